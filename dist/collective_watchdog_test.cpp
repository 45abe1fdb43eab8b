// The collective watchdog and the watched communicator, without MPI: a fake communicator
// whose collectives take as long as the test says, and a handler that records instead of
// ending the process.
#include "dist/collective_watchdog.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "dist/watched_communicator.h"

namespace im::dist {
namespace {

using namespace std::chrono_literals;

// Records the messages of a watchdog, thread-safely.
struct Recorder {
  std::mutex mutex;
  std::vector<std::string> messages;
  CollectiveWatchdog::TimeoutHandler handler() {
    return [this](const std::string& m) {
      std::lock_guard<std::mutex> lock(mutex);
      messages.push_back(m);
    };
  }
  std::vector<std::string> get() {
    std::lock_guard<std::mutex> lock(mutex);
    return messages;
  }
};

// Every blocking call sleeps `delay`, as a collective waiting for a slow or gone peer would.
class SlowCommunicator final : public Communicator {
 public:
  explicit SlowCommunicator(std::chrono::milliseconds delay) : delay_(delay) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void all_reduce(Tensor&, ReduceOp) override { std::this_thread::sleep_for(delay_); }
  std::unique_ptr<Work> all_reduce_async(Tensor&, ReduceOp) override {
    struct SlowWork final : Work {
      std::chrono::milliseconds delay;
      explicit SlowWork(std::chrono::milliseconds d) : delay(d) {}
      void wait() override { std::this_thread::sleep_for(delay); }
      bool test() override { return false; }
    };
    return std::make_unique<SlowWork>(delay_);
  }
  void broadcast(Tensor&, int) override { std::this_thread::sleep_for(delay_); }
  Tensor all_gather(const Tensor& t) override {
    std::this_thread::sleep_for(delay_);
    return t;
  }
  Tensor reduce_scatter(const Tensor& t, ReduceOp) override {
    std::this_thread::sleep_for(delay_);
    return t;
  }
  void barrier() override { std::this_thread::sleep_for(delay_); }
  std::unique_ptr<Communicator> duplicate() override {
    return std::make_unique<SlowCommunicator>(delay_);
  }

 private:
  std::chrono::milliseconds delay_;
};

TEST(CollectiveWatchdog, AWaitWithinTheTimeoutDoesNotFire) {
  Recorder rec;
  CollectiveWatchdog dog("rank 0 of 2 (host)", 1.0, rec.handler());
  for (int i = 0; i < 5; ++i) {
    CollectiveWatchdog::Watch watch(dog, "all_reduce");
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(1200ms);  // idle time between waits is not waiting
  EXPECT_TRUE(rec.get().empty());
}

TEST(CollectiveWatchdog, AWaitPastTheTimeoutFiresOnceNamingTheRankAndTheCollective) {
  Recorder rec;
  CollectiveWatchdog dog("rank 1 of 4 (node7)", 0.3, rec.handler());
  {
    CollectiveWatchdog::Watch watch(dog, "broadcast");
    std::this_thread::sleep_for(1000ms);
  }
  const auto messages = rec.get();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("rank 1 of 4 (node7)"), std::string::npos) << messages[0];
  EXPECT_NE(messages[0].find("broadcast did not complete within 0.3 s"), std::string::npos)
      << messages[0];
  EXPECT_NE(messages[0].find("dist.timeout_s"), std::string::npos) << messages[0];
}

TEST(CollectiveWatchdog, ZeroTimeoutNeverFiresAndTheTimeoutCanBeSetLater) {
  Recorder rec;
  CollectiveWatchdog dog("rank 0 of 2 (host)", 0, rec.handler());
  {
    CollectiveWatchdog::Watch watch(dog, "all_reduce");
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_TRUE(rec.get().empty());
  dog.set_timeout(0.2);
  EXPECT_DOUBLE_EQ(dog.timeout(), 0.2);
  {
    CollectiveWatchdog::Watch watch(dog, "all_reduce");
    std::this_thread::sleep_for(700ms);
  }
  EXPECT_EQ(rec.get().size(), 1u);
}

TEST(WatchedCommunicator, EveryBlockingWaitIsWatchedAlsoOnDuplicates) {
  Recorder rec;
  auto dog = std::make_shared<CollectiveWatchdog>("rank 0 of 2 (host)", 0.2, rec.handler());
  auto comm = watch_collectives(std::make_unique<SlowCommunicator>(600ms), dog);
  EXPECT_EQ(comm->size(), 2);
  Tensor t = Tensor::from_vector<float>({1, 2}, {2});
  comm->all_reduce(t, ReduceOp::Sum);
  comm->broadcast(t, 0);
  comm->all_reduce_async(t, ReduceOp::Sum)->wait();
  auto dup = comm->duplicate();
  dup->barrier();
  const auto messages = rec.get();
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_NE(messages[0].find("all_reduce did not"), std::string::npos) << messages[0];
  EXPECT_NE(messages[1].find("broadcast did not"), std::string::npos) << messages[1];
  EXPECT_NE(messages[2].find("all_reduce_async wait did not"), std::string::npos) << messages[2];
  EXPECT_NE(messages[3].find("barrier did not"), std::string::npos) << messages[3];
}

TEST(WatchedCommunicator, FastCollectivesPassThroughUnwatched) {
  Recorder rec;
  auto dog = std::make_shared<CollectiveWatchdog>("rank 0 of 2 (host)", 0.5, rec.handler());
  auto comm = watch_collectives(std::make_unique<SlowCommunicator>(1ms), dog);
  Tensor t = Tensor::from_vector<float>({1}, {1});
  for (int i = 0; i < 20; ++i) comm->all_reduce(t, ReduceOp::Sum);
  std::this_thread::sleep_for(700ms);
  EXPECT_TRUE(rec.get().empty());
}

}  // namespace
}  // namespace im::dist
