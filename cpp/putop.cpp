#include "cpp/putop.h"

#include <string>

#include "cpp/handoff.h"
#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {

PutOp::PutOp(std::unique_ptr<pvxs::server::ExecOp>&& op)
    : op_(std::move(op)), cancelled_(std::make_shared<std::atomic<bool>>(false)) {
    auto cancelled = cancelled_;
    // Runs on the server's loop when the client cancels or disconnects before the reply.
    op_->onCancel([cancelled]() { cancelled->store(true); });
}

PutOp::~PutOp() {
    if (!op_) return;
    try {
        if (handoff::takes())
            handoff::reply(std::move(op_), "put abandoned by the server without a reply");
        else
            op_->error("put abandoned by the server without a reply");
    } catch (...) {
        // A destructor must not throw; the client then times out on its own.
    }
}

void PutOp::reply_ok() {
    if (!op_) throw std::logic_error("put already answered");
    auto op = std::move(op_);
    if (handoff::takes())
        handoff::reply(std::move(op), std::string());
    else
        op->reply();
}

void PutOp::reply_error(rust::Str message) {
    if (!op_) throw std::logic_error("put already answered");
    auto op = std::move(op_);
    std::string text(message.data(), message.size());
    if (text.empty()) text = "put failed";
    if (handoff::takes())
        handoff::reply(std::move(op), std::move(text));
    else
        op->error(text);
}

bool PutOp::is_cancelled() const { return cancelled_->load(); }

}  // namespace mxpva
