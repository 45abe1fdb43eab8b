#include "kernels/cuda/graph.h"

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace im::kernels::cuda {

namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

cudaStream_t as_stream(StreamHandle s) {
  return static_cast<cudaStream_t>(s);
}

}  // namespace

bool stream_capturing(StreamHandle stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(as_stream(stream), &status), "cudaStreamIsCapturing");
  return status != cudaStreamCaptureStatusNone;
}

void record_event_in_graph(EventHandle event, StreamHandle stream) {
  const auto e = static_cast<cudaEvent_t>(event);
  if (stream_capturing(stream))
    check(cudaEventRecordWithFlags(e, as_stream(stream), cudaEventRecordExternal),
          "cudaEventRecordWithFlags (in a graph)");
  else
    check(cudaEventRecord(e, as_stream(stream)), "cudaEventRecord");
}

Graph::~Graph() {
  // Destructors must not throw; a failure here only leaks the graph.
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
}

void Graph::begin_capture(StreamHandle stream) {
  if (ready() || graph_) throw std::runtime_error("Graph::begin_capture: already captured");
  // Relaxed: the caching allocator may still need cudaMalloc for a block during capture.
  check(cudaStreamBeginCapture(as_stream(stream), cudaStreamCaptureModeRelaxed),
        "cudaStreamBeginCapture");
}

void Graph::end_capture(StreamHandle stream) {
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(as_stream(stream), &graph);
  if (ended != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();  // the failed capture's error is reported here, not left sticky
    check(ended, "cudaStreamEndCapture");
  }
  graph_ = graph;
  cudaGraphExec_t exec = nullptr;
  check(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  exec_ = exec;
}

void Graph::abandon_capture(StreamHandle stream) noexcept {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(as_stream(stream), &status) == cudaSuccess &&
      status == cudaStreamCaptureStatusNone)
    return;
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(as_stream(stream), &graph);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
}

void Graph::launch(StreamHandle stream) {
  if (!exec_) throw std::runtime_error("Graph::launch: nothing captured");
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), as_stream(stream)), "cudaGraphLaunch");
}

size_t Graph::node_count() const {
  if (!graph_) return 0;
  size_t n = 0;
  check(cudaGraphGetNodes(static_cast<cudaGraph_t>(graph_), nullptr, &n), "cudaGraphGetNodes");
  return n;
}

}  // namespace im::kernels::cuda
