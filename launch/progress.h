// The console progress line of a training run:
//   step 120/938 | epoch 1/1 | loss 0.6123 | acc 78.1% | lr 1.98e-03 | 212.4 samples/s | ETA 4m12s
#pragma once

#include <cstdint>
#include <string>

namespace im::launch {

struct ProgressState {
  int64_t step = 0, total_steps = 0;
  int64_t epoch = 0, total_epochs = 0;
  double loss = 0, accuracy = 0, lr = 0, samples_per_second = 0;
  double eta_seconds = 0;
};

std::string format_progress(const ProgressState& s);
// "4m12s", "1h03m", "12s".
std::string format_duration(double seconds);

}  // namespace im::launch
