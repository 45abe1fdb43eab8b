#include "dist/watched_communicator.h"

namespace im::dist {

namespace {

class WatchedWork final : public Work {
 public:
  WatchedWork(std::unique_ptr<Work> inner, std::shared_ptr<CollectiveWatchdog> dog)
      : inner_(std::move(inner)), dog_(std::move(dog)) {}
  void wait() override {
    CollectiveWatchdog::Watch watch(*dog_, "all_reduce_async wait");
    inner_->wait();
  }
  bool test() override { return inner_->test(); }

 private:
  std::unique_ptr<Work> inner_;
  std::shared_ptr<CollectiveWatchdog> dog_;
};

class WatchedCommunicator final : public Communicator {
 public:
  WatchedCommunicator(std::unique_ptr<Communicator> inner, std::shared_ptr<CollectiveWatchdog> dog)
      : inner_(std::move(inner)), dog_(std::move(dog)) {}

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  void all_reduce(Tensor& t, ReduceOp op) override {
    CollectiveWatchdog::Watch watch(*dog_, "all_reduce");
    inner_->all_reduce(t, op);
  }
  std::unique_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op) override {
    return std::make_unique<WatchedWork>(inner_->all_reduce_async(t, op), dog_);
  }
  void broadcast(Tensor& t, int root) override {
    CollectiveWatchdog::Watch watch(*dog_, "broadcast");
    inner_->broadcast(t, root);
  }
  Tensor all_gather(const Tensor& t) override {
    CollectiveWatchdog::Watch watch(*dog_, "all_gather");
    return inner_->all_gather(t);
  }
  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override {
    CollectiveWatchdog::Watch watch(*dog_, "reduce_scatter");
    return inner_->reduce_scatter(t, op);
  }
  void barrier() override {
    CollectiveWatchdog::Watch watch(*dog_, "barrier");
    inner_->barrier();
  }
  std::unique_ptr<Communicator> duplicate() override {
    return std::make_unique<WatchedCommunicator>(inner_->duplicate(), dog_);
  }

 private:
  std::unique_ptr<Communicator> inner_;
  std::shared_ptr<CollectiveWatchdog> dog_;
};

}  // namespace

std::unique_ptr<Communicator> watch_collectives(std::unique_ptr<Communicator> inner,
                                                std::shared_ptr<CollectiveWatchdog> watchdog) {
  return std::make_unique<WatchedCommunicator>(std::move(inner), std::move(watchdog));
}

}  // namespace im::dist
