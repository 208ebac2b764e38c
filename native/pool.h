// Persistent worker pool for the selfdev kernels. One process-wide pool (leaked on purpose so no
// joinable std::thread is destroyed at exit); calls from several Node environments are
// serialised by `call_mutex`. The calling thread always runs share 0 itself.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sd {

class Pool {
 public:
  // Runs f(t) for t in [0, nt) with t = 0 on the calling thread; returns when all are done.
  void run(int nt, const std::function<void(int)>& f) {
    if (nt <= 1) {
      f(0);
      return;
    }
    if (spawn_per_call) {  // comparison mode for the benchmark: new threads for every call
      std::vector<std::thread> ts;
      for (int t = 1; t < nt; t++) ts.emplace_back([&f, t] { f(t); });
      f(0);
      for (auto& t : ts) t.join();
      return;
    }
    std::lock_guard<std::mutex> call_lock(call_mutex_);
    ensure(nt - 1);
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &f;
      active_ = nt - 1;
      pending_ = nt - 1;
      ++gen_;
    }
    cv_.notify_all();
    f(0);
    std::unique_lock<std::mutex> lk(m_);
    done_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }

  // when true, run() spawns and joins fresh threads instead of using the pool (benchmark only)
  bool spawn_per_call = false;

  static Pool& get() {
    static Pool* p = new Pool();  // intentionally never destroyed
    return *p;
  }

 private:
  void ensure(int workers) {
    while (static_cast<int>(count_) < workers) {
      int idx = static_cast<int>(count_);
      uint64_t seen;
      {
        std::lock_guard<std::mutex> lk(m_);
        seen = gen_;
      }
      std::thread(&Pool::loop, this, idx, seen).detach();
      ++count_;
    }
  }

  void loop(int idx, uint64_t seen) {
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return gen_ != seen; });
        seen = gen_;
        if (idx >= active_) continue;
        job = job_;
      }
      (*job)(idx + 1);
      {
        std::lock_guard<std::mutex> lk(m_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  std::mutex call_mutex_;
  std::mutex m_;
  std::condition_variable cv_, done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t gen_ = 0;
  int active_ = 0;
  int pending_ = 0;
  size_t count_ = 0;
};

}  // namespace sd
