// CUDA graphs: the work a stream is given once, captured and then replayed with one
// launch. A replay costs the host microseconds where queuing the same kernels one by one
// costs it milliseconds, and it reuses the captured addresses, arguments and all: memory
// the graph touches must stay its own (core/caching_allocator.h's private pools), and
// anything that changes from one replay to the next must be read from memory the host
// rewrites between replays.
#pragma once

#include <string>

#include "kernels/cuda/stream.h"

namespace im::kernels::cuda {

// True while `stream` is being captured.
bool stream_capturing(StreamHandle stream);

// Records `event` on `stream`; during a capture, as a node of the graph, so that every
// replay records it (timing events inside a replayed step).
void record_event_in_graph(EventHandle event, StreamHandle stream);

class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Work queued on `stream` by this thread is recorded, not run, until end_capture. Any
  // call that needs the GPU's results meanwhile (a copy to the host, a synchronisation)
  // fails, and with it the capture.
  void begin_capture(StreamHandle stream);
  // Ends the capture and makes the graph ready to launch. Throws when the capture failed
  // (the reason from the runtime), leaving no graph.
  void end_capture(StreamHandle stream);
  // Ends a capture that is being abandoned (an exception in the middle): nothing is kept.
  void abandon_capture(StreamHandle stream) noexcept;
  bool ready() const { return exec_ != nullptr; }
  // Queues one replay on `stream`.
  void launch(StreamHandle stream);
  // Nodes in the captured graph (kernels, copies, memsets, event records).
  size_t node_count() const;

 private:
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
};

}  // namespace im::kernels::cuda
