#include "kernels/cuda/kernel_profiler.h"

#include <cupti.h>
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>

#include "kernels/cuda/runtime.h"

namespace im::kernels::cuda {
namespace {

// The CUPTI entry points used, looked up once with dlsym.
struct Cupti {
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiGetResultString) result_string = nullptr;
};

const Cupti& cupti() {
  static const Cupti api = [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("IM_CUPTI_LIBRARY")) candidates.emplace_back(env);
    for (const char* name : {"libcupti.so", "libcupti.so.13", "/usr/local/cuda/lib64/libcupti.so",
                             "/usr/local/cuda/extras/CUPTI/lib64/libcupti.so"})
      candidates.emplace_back(name);
    void* lib = nullptr;
    for (const std::string& c : candidates)
      if ((lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL))) break;
    if (!lib)
      throw std::runtime_error(
          "kernel profile: cannot load CUPTI (libcupti.so; set IM_CUPTI_LIBRARY to its path)");
    Cupti a;
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn) throw std::runtime_error(std::string("kernel profile: CUPTI lacks ") + name);
    };
    sym(a.register_callbacks, "cuptiActivityRegisterCallbacks");
    sym(a.enable, "cuptiActivityEnable");
    sym(a.disable, "cuptiActivityDisable");
    sym(a.flush_all, "cuptiActivityFlushAll");
    sym(a.next_record, "cuptiActivityGetNextRecord");
    sym(a.result_string, "cuptiGetResultString");
    return a;
  }();
  return api;
}

void check(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  if (r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED)
    throw std::runtime_error(std::string("kernel profile: ") + what +
                             ": another tool (ncu, nsys, compute-sanitizer) is already using "
                             "CUPTI in this process; run without it");
  const char* text = "unknown error";
  cupti().result_string(r, &text);
  throw std::runtime_error(std::string("kernel profile: ") + what + ": " + text);
}

struct Record {
  std::string name;
  uint64_t start, end;
};

// Filled by CUPTI's buffer-completed callback (possibly on its own thread).
std::mutex g_mutex;
std::vector<Record> g_records;
constexpr size_t kBufferBytes = 8 << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;  // as many as fit
}

std::string readable_kernel_name(const char* mangled) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : mangled;
  std::free(demangled);
  // Drop the argument list: the template arguments already say which kernel it is.
  if (!name.empty() && name.back() == ')') {
    int depth = 0;
    for (size_t i = name.size(); i-- > 0;) {
      if (name[i] == ')') ++depth;
      if (name[i] == '(' && --depth == 0) {
        name.resize(i);
        break;
      }
    }
  }
  return name;
}

const char* copy_name(uint8_t kind) {
  switch (kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD:
      return "[memcpy host to device]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH:
      return "[memcpy device to host]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD:
      return "[memcpy device to device]";
    default:
      return "[memcpy other]";
  }
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::vector<Record> batch;
  CUpti_Activity* record = nullptr;
  while (cupti().next_record(buffer, valid, &record) == CUPTI_SUCCESS) {
    switch (record->kind) {
      case CUPTI_ACTIVITY_KIND_KERNEL:
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
        batch.push_back({readable_kernel_name(k->name ? k->name : "?"), k->start, k->end});
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
        batch.push_back({copy_name(m->copyKind), m->start, m->end});
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
        batch.push_back({"[memset]", m->start, m->end});
        break;
      }
      default:
        break;
    }
  }
  std::free(buffer);
  std::lock_guard<std::mutex> lock(g_mutex);
  for (Record& r : batch) g_records.push_back(std::move(r));
}

constexpr CUpti_ActivityKind kKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
                                         CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

KernelProfiler::~KernelProfiler() {
  if (!running_) return;
  for (CUpti_ActivityKind k : kKinds) cupti().disable(k);
}

void KernelProfiler::start() {
  if (running_) throw std::runtime_error("kernel profile: already started");
  const Cupti& api = cupti();
  synchronize();  // work queued before the window is not counted in it
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_records.clear();
  }
  check(api.register_callbacks(buffer_requested, buffer_completed), "register callbacks");
  for (CUpti_ActivityKind k : kKinds) check(api.enable(k), "enable activity");
  running_ = true;
  start_s_ = now_s();
}

KernelProfile KernelProfiler::stop() {
  if (!running_) throw std::runtime_error("kernel profile: stop() without start()");
  synchronize();
  KernelProfile p;
  p.window_ms = (now_s() - start_s_) * 1e3;
  const Cupti& api = cupti();
  for (CUpti_ActivityKind k : kKinds) check(api.disable(k), "disable activity");
  running_ = false;
  check(api.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "flush");

  std::vector<Record> records;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    records.swap(g_records);
  }
  std::map<std::string, KernelTotal> by_name;
  std::vector<std::pair<uint64_t, uint64_t>> intervals;
  for (const Record& r : records) {
    if (r.end <= r.start) continue;
    KernelTotal& t = by_name[r.name];
    t.name = r.name;
    t.total_ms += (r.end - r.start) * 1e-6;
    t.launches += 1;
    p.kernel_ms += (r.end - r.start) * 1e-6;
    intervals.emplace_back(r.start, r.end);
  }
  p.records = static_cast<int64_t>(intervals.size());
  // Busy time: the union of the intervals (kernels on several streams may overlap).
  std::sort(intervals.begin(), intervals.end());
  uint64_t covered_to = 0;
  for (const auto& [s, e] : intervals) {
    const uint64_t from = std::max(s, covered_to);
    if (e > from) p.busy_ms += (e - from) * 1e-6;
    covered_to = std::max(covered_to, e);
  }
  for (auto& [name, total] : by_name) p.kernels.push_back(std::move(total));
  std::sort(p.kernels.begin(), p.kernels.end(),
            [](const KernelTotal& a, const KernelTotal& b) { return a.total_ms > b.total_ms; });
  return p;
}

std::string format_kernel_profile(const KernelProfile& p, int64_t steps, int64_t rows) {
  const double per = 1.0 / static_cast<double>(std::max<int64_t>(steps, 1));
  std::string out;
  char line[512];
  std::snprintf(line, sizeof(line),
                "kernel profile (CUPTI, per step over %lld steps): GPU busy %.2f ms of %.2f ms "
                "wall (%.0f%%), %lld launches, %.2f ms of kernel time\n",
                static_cast<long long>(steps), p.busy_ms * per, p.window_ms * per,
                p.window_ms > 0 ? 100.0 * p.busy_ms / p.window_ms : 0.0,
                static_cast<long long>(static_cast<double>(p.records) * per), p.kernel_ms * per);
  out += line;
  out += "   ms/step  share  launches  kernel\n";
  const int64_t n = std::min<int64_t>(rows, static_cast<int64_t>(p.kernels.size()));
  for (int64_t i = 0; i < n; ++i) {
    const KernelTotal& k = p.kernels[i];
    std::string name = k.name.size() > 140 ? k.name.substr(0, 137) + "..." : k.name;
    std::snprintf(line, sizeof(line), "  %8.3f %5.1f%% %9.0f  %s\n", k.total_ms * per,
                  p.kernel_ms > 0 ? 100.0 * k.total_ms / p.kernel_ms : 0.0,
                  static_cast<double>(k.launches) * per, name.c_str());
    out += line;
  }
  return out;
}

}  // namespace im::kernels::cuda
