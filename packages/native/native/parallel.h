// Threads shared by every @wrn/native kernel: one pool for the process, one thread per logical core
// (WRN_NATIVE_THREADS=N to change), and the ISA choice (WRN_NATIVE_ISA=portable forces the portable code).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace wrn {

inline int threadCount() {
  static const int count = [] {
    const char* env = std::getenv("WRN_NATIVE_THREADS");
    int n = env != nullptr ? std::atoi(env) : 0;
    if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
    return std::clamp(n, 1, 64);
  }();
  return count;
}

// Threads that live as long as the process: a conv call is often only a millisecond or two, which starting
// threads (and allocating their packing buffers) for each call would eat into.
class ThreadPool {
 public:
  explicit ThreadPool(int workers) {
    for (int id = 1; id <= workers; id++) std::thread([this, id] { serve(id); }).detach();
  }

  // Runs task(t) for t in [0, parts), t = 0 on the calling thread; returns when every part is done.
  void run(int parts, const std::function<void(int)>& task) {
    std::lock_guard<std::mutex> oneRunAtATime(runMutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      parts_ = parts;
      pending_ = parts - 1;
      generation_++;
    }
    wake_.notify_all();
    task(0);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  void serve(int id) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (id >= parts_) continue;
        task = task_;
      }
      (*task)(id);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex runMutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int)>* task_ = nullptr;
  int parts_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
};

// One pool for every call site (a static inside the parallelFor template would be one per instantiation).
inline ThreadPool& sharedPool() {
  static ThreadPool* pool = new ThreadPool(threadCount() - 1);  // never destroyed: its threads are detached
  return *pool;
}

inline bool avx2Fma() {
  static const bool enabled = [] {
    const char* forced = std::getenv("WRN_NATIVE_ISA");
    if (forced != nullptr && std::string(forced) == "portable") return false;
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return enabled;
}

// Runs work(t, begin, end) on `parts` ranges of [0, total) cut at multiples of `grain`, one thread each.
template <typename F>
inline void parallelFor(int64_t total, int64_t grain, F work) {
  const int64_t units = (total + grain - 1) / grain;
  const int parts = static_cast<int>(std::min<int64_t>(threadCount(), std::max<int64_t>(units, 1)));
  if (parts <= 1) {
    work(0, int64_t{0}, total);
    return;
  }
  sharedPool().run(parts, [&](int t) { work(t, std::min(total, units * t / parts * grain), std::min(total, units * (t + 1) / parts * grain)); });
}

}  // namespace wrn
