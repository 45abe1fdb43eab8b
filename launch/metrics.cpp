#include "launch/metrics.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace im::launch {

namespace {
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}
}  // namespace

MetricsRecord::MetricsRecord(std::string type) { fields_.push_back({"type", std::move(type)}); }

MetricsRecord& MetricsRecord::add(const std::string& key, double value) {
  fields_.push_back({key, value});
  return *this;
}
MetricsRecord& MetricsRecord::add(const std::string& key, int64_t value) {
  fields_.push_back({key, value});
  return *this;
}
MetricsRecord& MetricsRecord::add(const std::string& key, const std::string& value) {
  fields_.push_back({key, value});
  return *this;
}

std::string MetricsRecord::json() const {
  std::string out = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (i) out += ", ";
    out.append("\"").append(escape(fields_[i].first)).append("\": ");
    const auto& v = fields_[i].second;
    if (const auto* d = std::get_if<double>(&v)) {
      if (std::isfinite(*d)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.9g", *d);
        out += buf;
      } else {
        out += "null";  // JSON has no NaN or infinity
      }
    } else if (const auto* n = std::get_if<int64_t>(&v)) {
      out += std::to_string(*n);
    } else {
      out.append("\"").append(escape(std::get<std::string>(v))).append("\"");
    }
  }
  return out + "}";
}

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "a");
  IM_CHECK(file_ != nullptr, "cannot open metrics file '", path, "' for appending");
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const MetricsRecord& record) {
  const std::string line = record.json() + "\n";
  IM_CHECK(std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fflush(file_) == 0,
           "cannot write to metrics file '", path_, "'");
}

}  // namespace im::launch
