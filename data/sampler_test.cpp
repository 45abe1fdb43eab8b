#include "data/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "data/test_util.h"

namespace im::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;

// Every batch of one epoch (stops at the end-of-epoch signal).
std::vector<IndexBatch> one_epoch(Sampler& s) {
  std::vector<IndexBatch> out;
  while (auto b = s.next()) out.push_back(*b);
  return out;
}

std::vector<int64_t> flatten(const std::vector<IndexBatch>& batches) {
  std::vector<int64_t> out;
  for (const IndexBatch& b : batches) out.insert(out.end(), b.indices.begin(), b.indices.end());
  return out;
}

TEST(SamplerTest, InOrderBatchesThenEndOfEpoch) {
  Sampler s(10, SamplerOptions{4, false, 0, false});
  EXPECT_EQ(s.batches_per_epoch(), 3);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    const std::vector<IndexBatch> b = one_epoch(s);
    ASSERT_EQ(b.size(), 3u);
    EXPECT_EQ(b[0].indices, (std::vector<int64_t>{0, 1, 2, 3}));
    EXPECT_EQ(b[2].indices, (std::vector<int64_t>{8, 9}));
    EXPECT_EQ(b[2].epoch, epoch);
    EXPECT_EQ(b[2].index_in_epoch, 2);
    EXPECT_EQ(s.cursor(), (SamplerCursor{epoch + 1, 0}));
  }
}

TEST(SamplerTest, DropLastLeavesOutThePartialBatch) {
  Sampler s(10, SamplerOptions{4, true, 3, true});
  EXPECT_EQ(s.samples_per_epoch(), 8);
  EXPECT_EQ(s.batches_per_epoch(), 2);
  const std::vector<IndexBatch> b = one_epoch(s);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1].indices.size(), 4u);
  EXPECT_THAT(error_of([] {
                Sampler(3, SamplerOptions{4, false, 0, true});
              }),
              HasSubstr("3 samples make no full batch of 4 with drop_last"));
}

TEST(SamplerTest, ShuffledEpochIsAPermutation) {
  Sampler s(1001, SamplerOptions{64, true, 42, false});
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> seen = flatten(one_epoch(s));
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> want(1001);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(seen, want) << "epoch " << epoch;
  }
}

TEST(SamplerTest, ShuffleIsReproducibleAndDiffersAcrossEpochsAndSeeds) {
  const SamplerOptions opts{16, true, 7, false};
  Sampler a(500, opts), b(500, opts);
  const std::vector<int64_t> a0 = flatten(one_epoch(a)), a1 = flatten(one_epoch(a));
  const std::vector<int64_t> b0 = flatten(one_epoch(b)), b1 = flatten(one_epoch(b));
  EXPECT_EQ(a0, b0);
  EXPECT_EQ(a1, b1);
  EXPECT_NE(a0, a1);
  EXPECT_EQ(a0, a.epoch_order(0));
  Sampler c(500, SamplerOptions{16, true, 8, false});
  EXPECT_NE(flatten(one_epoch(c)), a0);
}

TEST(SamplerTest, ShuffleIsRoughlyUniform) {
  // Where sample 0 lands over many epochs: each of 8 slots about 1/8 of the time.
  Sampler s(8, SamplerOptions{8, true, 1, false});
  std::vector<int> counts(8, 0);
  const int epochs = 8000;
  for (int e = 0; e < epochs; ++e) {
    const std::vector<int64_t> order = s.epoch_order(e);
    ++counts[std::find(order.begin(), order.end(), 0) - order.begin()];
  }
  for (int c : counts) EXPECT_NEAR(c, epochs / 8, 150);  // ~5 standard deviations
}

TEST(SamplerTest, CursorSaveAndRestoreContinuesIdentically) {
  const SamplerOptions opts{7, true, 99, false};
  Sampler a(50, opts);
  one_epoch(a);
  for (int i = 0; i < 3; ++i) a.next();
  const SamplerCursor saved = a.cursor();
  EXPECT_EQ(saved, (SamplerCursor{1, 21}));

  Sampler b(50, opts);
  b.set_cursor(saved);
  for (int i = 0; i < 12; ++i) {  // across the end of epoch 1 into epoch 2
    const std::optional<IndexBatch> x = a.next(), y = b.next();
    ASSERT_EQ(x.has_value(), y.has_value()) << i;
    if (x) {
      EXPECT_EQ(x->indices, y->indices);
      EXPECT_EQ(x->epoch, y->epoch);
      EXPECT_EQ(x->index_in_epoch, y->index_in_epoch);
    }
    EXPECT_EQ(a.cursor(), b.cursor());
  }
}

TEST(SamplerTest, CursorThatDoesNotFitIsRefused) {
  Sampler s(10, SamplerOptions{4, false, 0, true});
  EXPECT_THAT(error_of([&] {
                s.set_cursor({0, 9});
              }),
              HasSubstr("cursor (epoch 0, position 9) does not fit an epoch of 8 samples"));
  s.set_cursor({2, 8});  // epoch 2's batches are out, its end not yet reported
  EXPECT_FALSE(s.next().has_value());
  EXPECT_EQ(s.cursor(), (SamplerCursor{3, 0}));
}

// Ranks of any world size take disjoint slices whose union, in rank order, is exactly the
// one-process batch, and they agree on the number of batches.
TEST(SamplerTest, RankSlicesPartitionTheGlobalBatches) {
  const SamplerOptions base{32, true, 11, false};
  Sampler one(200, base);
  const std::vector<IndexBatch> reference = one_epoch(one);
  for (int world : {2, 3, 4}) {
    std::vector<std::vector<IndexBatch>> per_rank;
    for (int r = 0; r < world; ++r) {
      SamplerOptions o = base;
      o.rank = r;
      o.world_size = world;
      Sampler s(200, o);
      per_rank.push_back(one_epoch(s));
      ASSERT_EQ(per_rank.back().size(), reference.size()) << world;
    }
    for (size_t b = 0; b < reference.size(); ++b) {
      std::vector<int64_t> joined;
      for (int r = 0; r < world; ++r) {
        const IndexBatch& mine = per_rank[r][b];
        EXPECT_EQ(mine.global_offset, static_cast<int64_t>(joined.size()));
        EXPECT_EQ(mine.global_size, static_cast<int64_t>(reference[b].indices.size()));
        EXPECT_FALSE(mine.indices.empty());
        joined.insert(joined.end(), mine.indices.begin(), mine.indices.end());
      }
      EXPECT_EQ(joined, reference[b].indices) << "world " << world << " batch " << b;
    }
  }
}

TEST(SamplerTest, FinalBatchSmallerThanTheWorldIsLeftOut) {
  // 66 samples in batches of 32: the last batch has 2 samples, too few for 4 ranks.
  SamplerOptions o{32, false, 0, false};
  o.world_size = 4;
  Sampler s(66, o);
  EXPECT_EQ(s.samples_per_epoch(), 64);
  EXPECT_EQ(one_epoch(s).size(), 2u);
  o.world_size = 2;  // 2 ranks can share it
  EXPECT_EQ(Sampler(66, o).samples_per_epoch(), 66);
}

TEST(SamplerTest, BatchSmallerThanTheWorldIsAnError) {
  SamplerOptions o{2, false, 0, false};
  o.world_size = 4;
  EXPECT_THAT(error_of([&] { Sampler(100, o); }),
              HasSubstr("global batch of 2 samples is smaller than the 4 ranks"));
}

// Shard-stratified order: 8 shards of unequal size, batches of 32.
SamplerOptions stratified(int rank, int world) {
  SamplerOptions o{32, true, 5, false};
  o.rank = rank;
  o.world_size = world;
  o.shard_sizes = {50, 50, 50, 50, 50, 50, 50, 41};
  return o;
}

TEST(SamplerTest, StratifiedOrderDrawsEachBatchFromEveryShardGroup) {
  Sampler s(391, stratified(0, 1));
  // 8 groups of 4 columns; the smallest shard (41) fills 10 batches.
  EXPECT_EQ(s.batches_per_epoch(), 10);
  EXPECT_EQ(s.samples_per_epoch(), 320);
  const std::vector<IndexBatch> epoch = one_epoch(s);
  ASSERT_EQ(epoch.size(), 10u);
  std::set<int64_t> seen;
  for (const IndexBatch& b : epoch) {
    ASSERT_EQ(b.indices.size(), 32u);
    for (size_t c = 0; c < 32; ++c) {
      EXPECT_EQ(b.indices[c] / 50, static_cast<int64_t>(c / 4)) << "column " << c;
      EXPECT_TRUE(seen.insert(b.indices[c]).second) << "sample " << b.indices[c] << " twice";
    }
  }
  EXPECT_EQ(flatten(epoch), s.epoch_order(0));
  EXPECT_NE(s.epoch_order(0), s.epoch_order(1));
  EXPECT_EQ(Sampler(391, stratified(0, 1)).epoch_order(3), s.epoch_order(3));
}

TEST(SamplerTest, StratifiedRanksNeedOnlyTheirShardsAndPartitionTheBatches) {
  Sampler one(391, stratified(0, 1));
  const std::vector<IndexBatch> reference = one_epoch(one);
  EXPECT_EQ(one.shards_needed(), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  for (int world : {2, 3, 4, 8}) {
    std::vector<std::vector<IndexBatch>> per_rank;
    std::set<int> all_needed;
    for (int r = 0; r < world; ++r) {
      Sampler s(391, stratified(r, world));
      const std::vector<int> needed = s.shards_needed();
      if (world == 4) {
        EXPECT_EQ(needed, (std::vector<int>{2 * r, 2 * r + 1})) << r;
      }
      if (world == 8) {
        EXPECT_EQ(needed, (std::vector<int>{r}));
      }
      all_needed.insert(needed.begin(), needed.end());
      per_rank.push_back(one_epoch(s));
      for (const IndexBatch& b : per_rank.back())
        for (int64_t i : b.indices)
          EXPECT_TRUE(std::count(needed.begin(), needed.end(), static_cast<int>(i / 50)))
              << "rank " << r << " of " << world << " got sample " << i;
    }
    EXPECT_EQ(all_needed.size(), 8u);
    for (size_t b = 0; b < reference.size(); ++b) {
      std::vector<int64_t> joined;
      for (int r = 0; r < world; ++r)
        joined.insert(joined.end(), per_rank[r][b].indices.begin(), per_rank[r][b].indices.end());
      EXPECT_EQ(joined, reference[b].indices) << "world " << world << " batch " << b;
    }
  }
}

TEST(SamplerTest, StratifiedOrderWithFewerColumnsThanShardsGroupsThem) {
  SamplerOptions o{3, false, 0, false};
  o.shard_sizes = {4, 4, 4, 4, 0};  // 3 groups: {0, 3}, {1}, {2}; the empty shard joins none
  Sampler s(16, o);
  EXPECT_EQ(s.batches_per_epoch(), 4);
  const std::vector<IndexBatch> epoch = one_epoch(s);
  EXPECT_EQ(epoch[0].indices, (std::vector<int64_t>{0, 4, 8}));
  EXPECT_EQ(epoch[2].indices, (std::vector<int64_t>{2, 6, 10}));
  o.shard_sizes = {10, 1};
  o.batch_size = 4;
  EXPECT_THAT(error_of([&] { Sampler(11, o); }), HasSubstr("more than the smallest group has"));
  o.shard_sizes = {10, 2};
  EXPECT_THAT(error_of([&] { Sampler(11, o); }), HasSubstr("add up to 12, not the 11"));
}

}  // namespace
}  // namespace im::data
