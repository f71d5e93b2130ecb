#include "cpp/sharedpv.h"

#include <string>

#include "cpp/putop.h"
#include "cpp/value.h"
#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {

std::unique_ptr<PvHandle> pv_new(rust::Box<PvContext> box) {
    // std::function needs a copyable callable; the context is shared by the three
    // callbacks and lives as long as pvxs keeps any of them.
    auto ctx = std::make_shared<rust::Box<PvContext>>(std::move(box));
    auto pv = pvxs::server::SharedPV::buildReadonly();

    pv.onPut([ctx](pvxs::server::SharedPV&, std::unique_ptr<pvxs::server::ExecOp>&& op,
                   pvxs::Value&& value) {
        // On a pvxs worker: read what the client sent, hand it to Rust, return.
        WirePut put{};
        try {
            read_put(value, put);
            const auto& cred = *op->credentials();
            put.peer = rust::String(cred.peer.data(), cred.peer.size());
            put.iface = rust::String(cred.iface.data(), cred.iface.size());
            put.method = rust::String(cred.method.data(), cred.method.size());
            put.account = rust::String(cred.account.data(), cred.account.size());
        } catch (std::exception& e) {
            op->error(std::string("cannot read the put: ") + e.what());
            return;
        }
        std::unique_ptr<PutOp> handle;
        try {
            handle.reset(new PutOp(std::move(op)));
        } catch (std::exception& e) {
            if (op) op->error(std::string("cannot accept the put: ") + e.what());
            return;
        }
        on_put(**ctx, std::move(put), std::move(handle));
    });
    pv.onFirstConnect([ctx](pvxs::server::SharedPV&) { on_connection(**ctx, true); });
    pv.onLastDisconnect([ctx](pvxs::server::SharedPV&) { on_connection(**ctx, false); });

    return std::unique_ptr<PvHandle>(new PvHandle(std::move(pv)));
}

PvHandle::~PvHandle() {
    try {
        // Clients still attached (the server may keep the PV until remove_pv) get a
        // refusal instead of a callback into a Rust side that is gone.
        pv_.onPut([](pvxs::server::SharedPV&, std::unique_ptr<pvxs::server::ExecOp>&& op,
                     pvxs::Value&&) { op->error("PV is no longer served"); });
        pv_.onFirstConnect(nullptr);
        pv_.onLastDisconnect(nullptr);
        pv_.close();
    } catch (...) {
    }
}

void PvHandle::open(const WireShape& shape, const WireUpdate& initial) const {
    auto prototype = build_prototype(shape);
    auto value = prototype.cloneEmpty();
    apply_update(shape, initial, value);
    {
        std::lock_guard<std::mutex> guard(lock_);
        prototype_ = prototype;
        shape_ = std::make_shared<const WireShape>(shape);
    }
    pv_.open(value);
}

void PvHandle::post(const WireUpdate& update) const {
    pvxs::Value prototype;
    std::shared_ptr<const WireShape> shape;
    {
        std::lock_guard<std::mutex> guard(lock_);
        prototype = prototype_;
        shape = shape_;
    }
    if (!shape) throw std::logic_error("PV was never opened");
    auto value = prototype.cloneEmpty();
    apply_update(*shape, update, value);
    pv_.post(value);
}

void PvHandle::close() const { pv_.close(); }

bool PvHandle::is_open() const { return pv_.isOpen(); }

WireUpdate PvHandle::current() const {
    std::shared_ptr<const WireShape> shape;
    {
        std::lock_guard<std::mutex> guard(lock_);
        shape = shape_;
    }
    if (!shape || !pv_.isOpen()) throw std::logic_error("PV is not open");
    WireUpdate out{};
    read_update(pv_.fetch(), out);
    return out;
}

}  // namespace mxpva
