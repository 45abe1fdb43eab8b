#include "launch/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "launch/progress.h"

using namespace im::launch;

TEST(Metrics, RecordsAreOneJsonObjectPerLine) {
  MetricsRecord r("train");
  r.add("step", int64_t{12}).add("loss", 0.5).add("note", std::string("a\"b")).add("bad", NAN);
  EXPECT_EQ(r.json(),
            "{\"type\": \"train\", \"step\": 12, \"loss\": 0.5, \"note\": \"a\\\"b\", \"bad\": null}");
  char tmpl[] = "/tmp/im_metrics_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string path = dir + "/metrics.jsonl";
  {
    MetricsLog log(path);
    log.write(r);
    log.write(MetricsRecord("eval").add("top1", 0.9));
  }
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) ++lines;
  EXPECT_EQ(lines, 2);
  std::remove(path.c_str());
  rmdir(dir.c_str());
  EXPECT_THROW(MetricsLog("/nonexistent-dir/metrics.jsonl"), im::Error);
}

TEST(Progress, LineHasEveryField) {
  ProgressState s;
  s.step = 120;
  s.total_steps = 938;
  s.epoch = 1;
  s.total_epochs = 1;
  s.loss = 0.61234;
  s.accuracy = 0.781;
  s.lr = 1.98e-3;
  s.samples_per_second = 212.4;
  s.eta_seconds = 252;
  EXPECT_EQ(format_progress(s),
            "step 120/938 | epoch 1/1 | loss 0.6123 | acc 78.1% | lr 1.98e-03 | 212.4 samples/s "
            "| ETA 4m12s");
  EXPECT_EQ(format_duration(3 * 3600 + 180), "3h03m");
  EXPECT_EQ(format_duration(12), "12s");
}
