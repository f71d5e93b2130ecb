// One client put that Rust answers later, from any thread.
#pragma once

#include <atomic>
#include <memory>

#include <pvxs/sharedpv.h>

#include "rust/cxx.h"

namespace mxpva {

class PutOp {
public:
    explicit PutOp(std::unique_ptr<pvxs::server::ExecOp>&& op);
    // Replies with an error if Rust dropped the op without answering.
    ~PutOp();
    PutOp(const PutOp&) = delete;
    PutOp& operator=(const PutOp&) = delete;

    void reply_ok();
    void reply_error(rust::Str message);
    bool is_cancelled() const;

private:
    std::unique_ptr<pvxs::server::ExecOp> op_;
    std::shared_ptr<std::atomic<bool>> cancelled_;
};

}  // namespace mxpva
