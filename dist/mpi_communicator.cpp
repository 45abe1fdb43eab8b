#include "dist/mpi_communicator.h"

#include "core/error.h"
#include "core/ops.h"
#include "dist/mpi_error.h"

namespace im::dist {

namespace {

MPI_Datatype mpi_type(const Tensor& t, const char* what) {
  switch (t.dtype()) {
    case DType::Float32:
      return MPI_FLOAT;
    case DType::Float64:
      return MPI_DOUBLE;
    case DType::Int64:
      return MPI_INT64_T;
    case DType::UInt8:  // raw bytes (an ncclUniqueId on its way to every rank)
      return MPI_UINT8_T;
    default:
      throw Error(std::string(what) +
                  ": MPI collectives take float32, float64, int64 or uint8, got " + t.describe());
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  return MPI_SUM;
}

void require_cpu_contiguous(const Tensor& t, const char* what) {
  IM_CHECK(t.device().is_cpu() && t.is_contiguous(), what, ": needs a contiguous CPU tensor, got ",
           t.describe());
}

// Avg is a sum divided by the world size, applied where the sum lands.
void scale_for_avg(Tensor& t, ReduceOp op, int size) {
  if (op != ReduceOp::Avg || size == 1) return;
  IM_CHECK(is_floating(t.dtype()), "all_reduce Avg needs a float tensor, got ", t.describe());
  t.copy_(mul(t.detach(), 1.0 / size));
}

class MpiWork final : public Work {
 public:
  MpiWork(MPI_Request request, Tensor t, ReduceOp op, int size)
      : request_(request), tensor_(std::move(t)), op_(op), size_(size) {}
  ~MpiWork() override {
    // A collective must complete before its buffer can be released.
    if (!done_) MPI_Wait(&request_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    if (done_) return;
    check_mpi(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
    finish();
  }
  bool test() override {
    if (done_) return true;
    int flag = 0;
    check_mpi(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE), "MPI_Test");
    if (flag) finish();
    return done_;
  }

 private:
  void finish() {
    done_ = true;
    scale_for_avg(tensor_, op_, size_);
  }
  MPI_Request request_;
  Tensor tensor_;
  ReduceOp op_;
  int size_;
  bool done_ = false;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  std::unique_ptr<Communicator> duplicate() override {
    MPI_Comm dup;
    check_mpi(MPI_Comm_dup(comm_, &dup), "MPI_Comm_dup");
    return std::make_unique<MpiCommunicator>(dup, true);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(Tensor& t, ReduceOp op) override {
    require_cpu_contiguous(t, "all_reduce");
    if (t.numel() > 0)
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()),
                              mpi_type(t, "all_reduce"), mpi_op(op), comm_),
                "MPI_Allreduce");
    scale_for_avg(t, op, size_);
  }

  std::unique_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op) override {
    require_cpu_contiguous(t, "all_reduce_async");
    MPI_Request request = MPI_REQUEST_NULL;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()),
                             mpi_type(t, "all_reduce_async"), mpi_op(op), comm_, &request),
              "MPI_Iallreduce");
    return std::make_unique<MpiWork>(request, t, op, size_);
  }

  void broadcast(Tensor& t, int root) override {
    require_cpu_contiguous(t, "broadcast");
    IM_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " is not a rank of ", size_);
    if (t.numel() > 0)
      check_mpi(MPI_Bcast(t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t, "broadcast"), root,
                          comm_),
                "MPI_Bcast");
  }

  Tensor all_gather(const Tensor& t) override {
    const Tensor src = t.contiguous();
    require_cpu_contiguous(src, "all_gather");
    Shape shape = src.shape();
    shape.insert(shape.begin(), size_);
    Tensor out = Tensor::empty(shape, src.dtype());
    check_mpi(MPI_Allgather(src.data_ptr(), static_cast<int>(src.numel()),
                            mpi_type(src, "all_gather"), out.data_ptr(),
                            static_cast<int>(src.numel()), mpi_type(src, "all_gather"), comm_),
              "MPI_Allgather");
    return out;
  }

  Tensor reduce_scatter(const Tensor& t, ReduceOp op) override {
    const Tensor src = t.contiguous();
    require_cpu_contiguous(src, "reduce_scatter");
    IM_CHECK(src.dim() >= 1 && src.size(0) % size_ == 0, "reduce_scatter: dim 0 of ",
             src.describe(), " is not a multiple of the world size ", size_);
    Shape shape = src.shape();
    shape[0] /= size_;
    Tensor out = Tensor::empty(shape, src.dtype());
    check_mpi(
        MPI_Reduce_scatter_block(src.data_ptr(), out.data_ptr(), static_cast<int>(out.numel()),
                                 mpi_type(src, "reduce_scatter"), mpi_op(op), comm_),
        "MPI_Reduce_scatter_block");
    scale_for_avg(out, op, size_);
    return out;
  }

  void barrier() override { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

 private:
  MPI_Comm comm_;
  bool owned_ = false;  // made by duplicate(): freed with this object
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm) {
  return std::make_unique<MpiCommunicator>(comm, false);
}

}  // namespace im::dist
