// Moves the next batch to the GPU while the current step computes: the copy runs on a
// stream of its own, so the step after it finds its inputs already there instead of
// waiting for a host-to-device copy at its start. On the CPU it hands batches through.
#pragma once

#include <optional>

#include "core/device.h"
#include "data/collate.h"

namespace im::launch {

class BatchStager {
 public:
  explicit BatchStager(Device device);
  ~BatchStager();
  BatchStager(const BatchStager&) = delete;
  BatchStager& operator=(const BatchStager&) = delete;

  // Starts copying `host` (pinned, for the copy to be asynchronous) to the device. Its
  // device memory comes from the compute stream's pool, and the copy first waits for the
  // work queued there so far, which is what last used that memory.
  void stage(const data::Batch& host);
  bool staged() const { return staged_.has_value(); }
  // The staged batch; work queued on the compute stream from now on waits for its copy.
  data::Batch take();

 private:
  Device device_;
  std::optional<data::Batch> staged_;
  void* copy_stream_ = nullptr;
  void* compute_done_ = nullptr;  // event: the compute stream's work before the copy
  void* copied_ = nullptr;        // event: the copy finished
};

}  // namespace im::launch
