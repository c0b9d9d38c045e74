// Threads shared by every @wrn/native kernel: one pool for the process, one thread per logical core
// (WRN_NATIVE_THREADS=N to change), and the ISA choice (WRN_NATIVE_ISA=portable forces the portable code).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

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

// How long a thread spins waiting for the pool (a worker for the next task, the caller for its parts) before it
// sleeps on a condition variable. Waking a sleeping thread costs tens of microseconds, and a conv of ResNet-20 is a
// few hundred: on an idle 2-core machine whole-model predict and training steps of ResNet-20 at batch 64 measured
// 1.11-1.15x faster spinning 50-200 us (tools/bench/native-inference-ab.ts --env WRN_NATIVE_SPIN_US=0 --train). But
// where another process wants the cores a spinning worker takes its time: with one busy process beside it the same
// A/B measured 0.68-0.90x. So the pool spins 200 us only while the 1-minute load average is below the pool's
// threads + 0.5 (checked every half second; our own busy threads count in it), else it sleeps at once.
// WRN_NATIVE_SPIN_US=N (read at each run, so that an A/B switches it in one process) spins N us regardless; 0 never.
inline bool coresLookIdle() {
  static std::atomic<int64_t> checkedAtMs{-1000000};
  static std::atomic<bool> idle{true};
  const int64_t nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (nowMs - checkedAtMs.load(std::memory_order_relaxed) >= 500) {
    checkedAtMs.store(nowMs, std::memory_order_relaxed);
    double load = 0;
    if (getloadavg(&load, 1) == 1) idle.store(load < threadCount() + 0.5, std::memory_order_relaxed);
  }
  return idle.load(std::memory_order_relaxed);
}

inline int64_t spinMicros() {
  const char* env = std::getenv("WRN_NATIVE_SPIN_US");
  if (env != nullptr) {
    const long long us = std::atoll(env);
    return us > 0 ? static_cast<int64_t>(us) : 0;
  }
  return coresLookIdle() ? 200 : 0;
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins until done() or `micros` have passed; true where done() became true.
template <typename Done>
inline bool spinUntil(int64_t micros, Done done) {
  if (micros <= 0) return done();
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(micros);
  for (int i = 0;; i++) {
    if (done()) return true;
    cpuRelax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) return done();
  }
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
    const int64_t spin = spinMicros();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      parts_ = parts;
      spin_.store(spin, std::memory_order_relaxed);
      pending_.store(parts - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    task(0);
    if (spinUntil(spin, [this] { return pending_.load(std::memory_order_acquire) == 0; })) return;
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
  }

 private:
  void serve(int id) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* task;
      // Spin a while for the next run (it usually comes within microseconds: the next kernel), then sleep.
      spinUntil(spin_.load(std::memory_order_relaxed), [&] { return generation_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        seen = generation_.load(std::memory_order_relaxed);
        if (id >= parts_) continue;
        task = task_;
      }
      (*task)(id);
      std::lock_guard<std::mutex> lock(mutex_);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_one();
    }
  }

  std::mutex runMutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int)>* task_ = nullptr;
  int parts_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> spin_{0};
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
