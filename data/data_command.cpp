#include "data/data_command.h"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <system_error>

#include "core/error.h"
#include "data/convert_fashion_mnist.h"

namespace im::data {

namespace {

constexpr const char* kFashionMnistSource = "/usr/share/datasets/fashion-mnist";

void print_usage() {
  std::printf(
      "usage: infomamba_dist data <dataset> --out DIR [--shards N] [--src DIR]\n"
      "\n"
      "Converts a raw dataset into HDF5 shards plus manifest.pb (docs/DATA_FORMAT.md).\n"
      "\n"
      "datasets:\n"
      "  fashion-mnist  IDX files; --src defaults to %s\n"
      "  mnist          IDX files; --src is required\n"
      "\n"
      "options:\n"
      "  --out DIR      output directory (created if missing)\n"
      "  --shards N     shards per split (default 8; fewer if a split is smaller)\n"
      "  --src DIR      directory holding the *-idx?-ubyte[.gz] files\n",
      kFashionMnistSource);
}

struct Args {
  std::string dataset, out, src;
  int64_t shards = 8;
  bool help = false;
};

// Parses argv[1..]; throws im::Error with the message to print.
Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      a.help = true;
      return a;
    }
    if (arg.rfind("--", 0) != 0) {
      IM_CHECK(a.dataset.empty(), "unexpected argument '", arg, "' (the dataset is '", a.dataset,
               "')");
      a.dataset = arg;
      continue;
    }
    // --key value or --key=value
    std::string key = arg, value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      key = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else {
      IM_CHECK(key == "--out" || key == "--src" || key == "--shards", "unknown option '", key,
               "' (try 'infomamba_dist data --help')");
      IM_CHECK(i + 1 < argc, "option ", key, " needs a value");
      value = argv[++i];
    }
    if (key == "--out") {
      a.out = value;
    } else if (key == "--src") {
      a.src = value;
    } else if (key == "--shards") {
      int64_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      IM_CHECK(ec == std::errc() && end == value.data() + value.size() && n >= 1, "--shards '",
               value, "' is not a positive integer");
      a.shards = n;
    } else {
      IM_CHECK(false, "unknown option '", key, "' (try 'infomamba_dist data --help')");
    }
    IM_CHECK(!value.empty(), "option ", key, " needs a value");
  }
  return a;
}

}  // namespace

int run_data_command(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    if (a.help) {
      print_usage();
      return 0;
    }
    IM_CHECK(!a.dataset.empty(),
             "which dataset? (fashion-mnist or mnist; try 'infomamba_dist data --help')");
    IM_CHECK(a.dataset == "fashion-mnist" || a.dataset == "mnist", "unknown dataset '", a.dataset,
             "' (known: fashion-mnist, mnist)");
    IM_CHECK(!a.out.empty(), "--out DIR is required");
    if (a.src.empty()) {
      IM_CHECK(a.dataset == "fashion-mnist", a.dataset, " needs --src DIR (the IDX files)");
      a.src = kFashionMnistSource;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const ConvertSummary s = convert_idx_dataset(a.src, a.out, a.shards, a.dataset);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "%s: wrote %lld train shards (%lld samples) and %lld test shards (%lld samples) to %s "
        "in %.1f s; train mean %.4f std %.4f\n",
        a.dataset.c_str(), static_cast<long long>(s.train_shards),
        static_cast<long long>(s.train_samples), static_cast<long long>(s.test_shards),
        static_cast<long long>(s.test_samples), a.out.c_str(), seconds, s.channel_mean[0],
        s.channel_std[0]);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "infomamba_dist data: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    // Filesystem and allocation failures: still one line, still a non-zero exit.
    std::fprintf(stderr, "infomamba_dist data: error: %s\n", e.what());
    return 2;
  }
}

}  // namespace im::data
