#include "dist/nccl_communicator.h"

#include "core/error.h"

#if IM_WITH_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"
#endif

namespace im::dist {

#if !IM_WITH_NCCL

bool nccl_built() {
  return false;
}

std::unique_ptr<Communicator> make_nccl_communicator(Communicator&, Device, const std::string&,
                                                     double) {
  throw Error("this build has no NCCL (configure with the CUDA backend and NCCL installed)");
}

#else

bool nccl_built() {
  return true;
}

namespace {

namespace cuda = kernels::cuda;

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess && r != ncclInProgress)
    throw Error(std::string("NCCL error in ") + what + ": " + ncclGetErrorString(r));
}

ncclDataType_t nccl_type(const Tensor& t, const char* op) {
  switch (t.dtype()) {
    case DType::Float32:
      return ncclFloat32;
    case DType::Float64:
      return ncclFloat64;
    case DType::BFloat16:
      return ncclBfloat16;
    case DType::Int32:
      return ncclInt32;
    case DType::Int64:
      return ncclInt64;
    case DType::UInt8:
      return ncclUint8;
  }
  throw Error(std::string(op) + ": unsupported dtype " + dtype_name(t.dtype()));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return ncclSum;
    case ReduceOp::Avg:
      return ncclAvg;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
  }
  return ncclSum;
}

// Collectives in flight, each an event recorded on the NCCL stream after it, watched by
// one thread. An event still pending after the timeout means a peer is gone or hung.
class Monitor {
 public:
  Monitor(ncclComm_t comm, Device device, std::string who, double timeout_seconds)
      : comm_(comm), who_(std::move(who)), timeout_(timeout_seconds) {
    if (timeout_ > 0)
      thread_ = std::thread([this, device] {
        cuda::set_device(device.index);  // else this thread would open a context on GPU 0
        loop();
      });
  }
  ~Monitor() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (auto& p : pending_) cuda::destroy_event(p.event);
  }

  // Watches what has just been queued on `stream`.
  void watch(cuda::StreamHandle stream, const char* what) {
    if (timeout_ <= 0) return;
    cuda::EventHandle done = cuda::create_event();
    cuda::record_event(done, stream);
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back({done, what, Clock::now()});
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    cuda::EventHandle event;
    const char* what;
    Clock::time_point start;
  };

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100));
      while (!pending_.empty() && cuda::event_done(pending_.front().event)) {
        cuda::destroy_event(pending_.front().event);
        pending_.pop_front();
      }
      if (pending_.empty()) continue;
      const double waited =
          std::chrono::duration<double>(Clock::now() - pending_.front().start).count();
      if (waited < timeout_) continue;
      std::fprintf(stderr,
                   "error: %s: NCCL %s did not finish within dist.timeout_s = %g s (a peer rank "
                   "or node stopped responding); aborting the NCCL communicator, exit 1\n",
                   who_.c_str(), pending_.front().what, timeout_);
      std::fflush(stderr);
      ncclCommAbort(comm_);
      std::_Exit(1);
    }
  }

  ncclComm_t comm_;
  std::string who_;
  double timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> pending_;
  bool stop_ = false;
  std::thread thread_;
};

// A collective queued on the NCCL stream: waiting makes the caller's stream wait for it.
class NcclWork : public Work {
 public:
  explicit NcclWork(cuda::EventHandle done) : done_(done) {}
  ~NcclWork() override { cuda::destroy_event(done_); }
  void wait() override { cuda::stream_wait_event(cuda::current_stream(), done_); }
  bool test() override { return cuda::event_done(done_); }

 private:
  cuda::EventHandle done_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(Communicator& host, std::unique_ptr<Communicator> owned_host, ncclComm_t comm,
                   Device device, std::string who, double timeout)
      : host_(host),
        owned_host_(std::move(owned_host)),
        comm_(comm),
        device_(device),
        who_(who),
        timeout_(timeout),
        stream_(cuda::create_stream()),
        ready_(cuda::create_event()),
        monitor_(comm, device, who, timeout) {}
  ~NcclCommunicator() override {
    cuda::stream_synchronize(stream_);
    ncclCommDestroy(comm_);
    cuda::destroy_event(ready_);
    cuda::destroy_stream(stream_);
  }

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }

  void all_reduce(Tensor& t, ReduceOp op) override {
    if (t.device().is_cpu()) return host_.all_reduce(t, op);
    all_reduce_async(t, op)->wait();
  }

  std::unique_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op) override {
    if (t.device().is_cpu()) return host_.all_reduce_async(t, op);
    check_tensor(t, "all_reduce");
    return launch("all_reduce", [&](cudaStream_t s) {
      return ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()),
                           nccl_type(t, "all_reduce"), nccl_op(op), comm_, s);
    });
  }

  void broadcast(Tensor& t, int root) override {
    if (t.device().is_cpu()) return host_.broadcast(t, root);
    check_tensor(t, "broadcast");
    launch("broadcast", [&](cudaStream_t s) {
      return ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()),
                           nccl_type(t, "broadcast"), root, comm_, s);
    })->wait();
  }

  Tensor all_gather(const Tensor& t) override {
    if (t.device().is_cpu()) return host_.all_gather(t);
    const Tensor src = t.contiguous();
    Shape shape = t.shape();
    shape.insert(shape.begin(), size());
    Tensor out = Tensor::empty(shape, t.dtype(), t.device());
    launch("all_gather", [&](cudaStream_t s) {
      return ncclAllGather(src.data_ptr(), out.data_ptr(), static_cast<size_t>(src.numel()),
                           nccl_type(src, "all_gather"), comm_, s);
    })->wait();
    return out;
  }

  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override {
    if (t.device().is_cpu()) return host_.reduce_scatter(t, op);
    const Tensor src = t.contiguous();
    IM_CHECK(src.dim() >= 1 && src.size(0) % size() == 0, "reduce_scatter: dim 0 of ",
             src.describe(), " is not a multiple of the ", size(), " ranks");
    Shape shape = src.shape();
    shape[0] /= size();
    Tensor out = Tensor::empty(shape, src.dtype(), src.device());
    launch("reduce_scatter", [&](cudaStream_t s) {
      return ncclReduceScatter(src.data_ptr(), out.data_ptr(), static_cast<size_t>(out.numel()),
                               nccl_type(src, "reduce_scatter"), nccl_op(op), comm_, s);
    })->wait();
    return out;
  }

  void barrier() override {
    cuda::stream_synchronize(cuda::current_stream());
    host_.barrier();
  }

  std::unique_ptr<Communicator> duplicate() override {
    std::unique_ptr<Communicator> host_dup = host_.duplicate();
    ncclComm_t split = nullptr;
    check_nccl(ncclCommSplit(comm_, 0, rank(), &split, nullptr), "ncclCommSplit");
    Communicator& h = *host_dup;
    return std::make_unique<NcclCommunicator>(h, std::move(host_dup), split, device_, who_,
                                              timeout_);
  }

 private:
  void check_tensor(const Tensor& t, const char* op) const {
    IM_CHECK(t.device() == device_, op, ": ", t.describe(), " is not on this rank's GPU ",
             device_.str());
    IM_CHECK(t.is_contiguous(), op, ": ", t.describe(), " must be contiguous");
  }

  // Orders the collective after the caller's queued work, runs it on the NCCL stream and
  // returns its completion event as a Work.
  template <typename Launch>
  std::unique_ptr<Work> launch(const char* what, Launch&& call) {
    cuda::record_event(ready_, cuda::current_stream());
    cuda::stream_wait_event(stream_, ready_);
    check_nccl(call(static_cast<cudaStream_t>(stream_)), what);
    cuda::EventHandle done = cuda::create_event();
    cuda::record_event(done, stream_);
    monitor_.watch(stream_, what);
    return std::make_unique<NcclWork>(done);
  }

  Communicator& host_;
  std::unique_ptr<Communicator> owned_host_;  // set for duplicates
  ncclComm_t comm_;
  Device device_;
  std::string who_;
  double timeout_;
  cuda::StreamHandle stream_;
  cuda::EventHandle ready_;
  Monitor monitor_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, Device device,
                                                     const std::string& who,
                                                     double timeout_seconds) {
  IM_CHECK(device.is_cuda(), "NCCL communicator: ", device.str(), " is not a GPU");
  cuda::set_device(device.index);
  // Rank 0's id reaches every rank over the host communicator, as raw bytes.
  ncclUniqueId id{};
  if (host.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  std::vector<uint8_t> bytes(reinterpret_cast<uint8_t*>(&id),
                             reinterpret_cast<uint8_t*>(&id) + sizeof id);
  Tensor t = Tensor::from_vector(bytes, {static_cast<int64_t>(bytes.size())});
  host.broadcast(t, 0);
  std::memcpy(&id, t.data_ptr(), sizeof id);
  ncclComm_t comm = nullptr;
  check_nccl(ncclCommInitRank(&comm, host.size(), id, host.rank()), "ncclCommInitRank");
  return std::make_unique<NcclCommunicator>(host, nullptr, comm, device, who, timeout_seconds);
}

#endif

}  // namespace im::dist
