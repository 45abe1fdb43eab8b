// Gradient checks of the selective scan against every input, in both scan directions,
// with and without the injection. delta > 0 and A < 0 as in a trained model.
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::gradcheck_multi;
using im::testing::random_constant;
using im::testing::random_input;

namespace {

struct ScanInputs {
  Tensor u, delta, A, Bm, Cm, D, inject;
};

ScanInputs make_inputs(int64_t B, int64_t L, int64_t E, int64_t N, uint64_t seed) {
  ScanInputs s;
  s.u = random_input({B, L, E}, seed);
  s.delta = random_input({B, L, E}, seed + 1, 0.05, 0.5);
  s.A = random_input({E, N}, seed + 2, -1.5, -0.2);
  s.Bm = random_input({B, L, N}, seed + 3);
  s.Cm = random_input({B, L, N}, seed + 4);
  s.D = random_input({E}, seed + 5);
  s.inject = random_input({B, L, E}, seed + 6);
  return s;
}

}  // namespace

GRADCHECK_CASE(selective_scan, "selective_scan") {
  struct Case {
    int64_t B, L, E, N;
  };
  const std::vector<Case> cases = {{1, 1, 3, 2}, {2, 3, 3, 5}, {2, 7, 3, 2}, {1, 7, 3, 5}};
  uint64_t seed = 400;
  for (const Case& c : cases) {
    const ScanInputs s = make_inputs(c.B, c.L, c.E, c.N, seed);
    seed += 10;
    for (bool reverse : {false, true}) {
      const std::string what = "B=" + std::to_string(c.B) + " L=" + std::to_string(c.L) +
                               " E=" + std::to_string(c.E) + " N=" + std::to_string(c.N) +
                               (reverse ? " reverse" : " forward");
      EXPECT_TRUE(gradcheck(
          [reverse](const auto& in) {
            return im::selective_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], reverse);
          },
          {s.u, s.delta, s.A, s.Bm, s.Cm, s.D, s.inject}))
          << what << " with inject";
      EXPECT_TRUE(gradcheck(
          [reverse](const auto& in) {
            return im::selective_scan(in[0], in[1], in[2], in[3], in[4], in[5], Tensor(), reverse);
          },
          {s.u, s.delta, s.A, s.Bm, s.Cm, s.D}))
          << what << " without inject";
    }
  }
}

GRADCHECK_CASE(selective_scan_partial_and_strided, "selective_scan") {
  // Only some inputs need gradients; u and inject arrive as transposed views.
  const int64_t B = 2, L = 5, E = 3, N = 4;
  Tensor u_t = random_constant({B, E, L}, 450);
  Tensor delta = random_input({B, L, E}, 451, 0.05, 0.5);
  Tensor A = random_input({E, N}, 452, -1.5, -0.2);
  Tensor Bm = random_constant({B, L, N}, 453);
  Tensor Cm = random_input({B, L, N}, 454);
  Tensor D = random_constant({E}, 455);
  Tensor inject_t = random_input({B, E, L}, 456);
  for (bool reverse : {false, true}) {
    EXPECT_TRUE(gradcheck(
        [reverse](const auto& in) {
          return im::selective_scan(in[0].transpose(1, 2), in[1], in[2], in[3], in[4], in[5],
                                    in[6].transpose(1, 2), reverse);
        },
        {u_t, delta, A, Bm, Cm, D, inject_t}))
        << (reverse ? "reverse" : "forward");
  }
}

GRADCHECK_CASE(selective_scan_bidirectional_mixer, "selective_scan", "softplus") {
  // The way the mixer uses it: delta = softplus(.), A = -exp(A_log), both directions
  // averaged, sharing u and the injection.
  const int64_t B = 1, L = 4, E = 3, N = 2;
  Tensor u = random_input({B, L, E}, 470);
  Tensor dt_raw = random_input({B, L, E}, 471, -3.0, -1.0);
  Tensor A_log = random_input({E, N}, 472, -1.0, 0.5);
  Tensor Bm = random_input({B, L, N}, 473);
  Tensor Cm = random_input({B, L, N}, 474);
  Tensor D = random_input({E}, 475);
  Tensor inject = random_input({B, L, E}, 476);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        const Tensor delta = im::softplus(in[1]);
        const Tensor A = im::neg(im::exp(in[2]));
        const Tensor fwd = im::selective_scan(in[0], delta, A, in[3], in[4], in[5], in[6]);
        const Tensor bwd = im::selective_scan(in[0], delta, A, in[3], in[4], in[5], in[6], true);
        return im::mul(im::add(fwd, bwd), 0.5);
      },
      {u, dt_raw, A_log, Bm, Cm, D, inject}));
}

GRADCHECK_CASE(selective_scan_delta_bias_softplus, "selective_scan") {
  // Δ = softplus(delta + bias) (or delta + bias) inside the scan: gradients of the raw
  // delta and of the bias, both directions, with raw + bias crossing zero and one channel
  // above softplus's threshold (where Δ passes through).
  const int64_t B = 2, L = 5, E = 3, N = 3;
  ScanInputs s = make_inputs(B, L, E, N, 480);
  Tensor raw = random_input({B, L, E}, 481, -1.5, 1.5);
  Tensor bias = im::Tensor::from_vector<double>({-0.7, 0.4, 0.2}, {E});
  for (bool softplus : {false, true}) {
    for (bool reverse : {false, true}) {
      Tensor delta_in = softplus ? raw : im::add(raw, 2.0).detach();  // Δ > 0 without softplus
      EXPECT_TRUE(gradcheck(
          [softplus, reverse](const auto& in) {
            return im::selective_scan(in[0], in[1], in[2], in[3], in[4], in[5],
                                      {.inject = in[6],
                                       .delta_bias = in[7],
                                       .delta_softplus = softplus,
                                       .reverse = reverse});
          },
          {s.u, delta_in, s.A, s.Bm, s.Cm, s.D, s.inject, bias}))
          << (softplus ? "softplus" : "bias only") << (reverse ? " reverse" : " forward");
    }
  }
  // Above the threshold: Δ = raw + bias exactly (slope 1).
  Tensor big = random_input({1, 3, 2}, 482, 21.0, 22.0);
  Tensor small_bias = im::Tensor::from_vector<double>({0.1, 0.2}, {2});
  ScanInputs t = make_inputs(1, 3, 2, 2, 483);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        return im::selective_scan(in[0], in[1], in[2], in[3], in[4], in[5],
                                  {.delta_bias = in[6], .delta_softplus = true});
      },
      {t.u, im::mul(big, 0.01).detach(), t.A, t.Bm, t.Cm, t.D, small_bias}))
      << "small delta";
}

GRADCHECK_CASE(selective_scan_two_problems_in_one_op, "selective_scan") {
  // The bidirectional layout: two problems in one op, sharing u and the injection (their
  // gradients add up), the second reversed and with Δ built inside from a bias.
  const int64_t B = 2, L = 4, E = 3, N = 2;
  ScanInputs s = make_inputs(B, L, E, N, 490);
  ScanInputs t = make_inputs(B, L, E, N, 500);
  Tensor raw = random_input({B, L, E}, 510, -1.0, 1.0);
  Tensor bias = random_input({E}, 511, -1.0, 0.5);
  EXPECT_TRUE(gradcheck_multi(
      [](const auto& in) {
        return im::selective_scan_multi(
            {{in[0], in[1], in[2], in[3], in[4], in[5], {.inject = in[6]}},
             {in[0],
              in[7],
              in[8],
              in[9],
              in[10],
              in[11],
              {.inject = in[6], .delta_bias = in[12], .delta_softplus = true, .reverse = true}}});
      },
      {s.u, s.delta, s.A, s.Bm, s.Cm, s.D, s.inject, raw, t.A, t.Bm, t.Cm, t.D, bias}));
}
