#include "cpp/sharedpv.h"

#include <string>

#include "cpp/gate.h"
#include "cpp/handoff.h"
#include "cpp/putop.h"
#include "cpp/value.h"
#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {

std::unique_ptr<PvHandle> pv_new(rust::Box<PvContext> box) {
    // The context lives as long as the SharedPV's state in pvxs (its Impl), which pvxs
    // keeps alive across every callback it runs (each of its closures holds it): the
    // one closure that owns the context is the RPC callback, which mxpva does not
    // otherwise use and never replaces. The three callbacks that use it hold a plain
    // pointer, which libstdc++'s std::function stores in place; a shared_ptr capture
    // would be a heap chunk in each (issue 23: memory per PV, two 32-byte chunks less).
    auto owner = std::make_shared<rust::Box<PvContext>>(std::move(box));
    const PvContext* ctx = &**owner;
    auto pv = pvxs::server::SharedPV::buildReadonly();
    pv.onRPC([owner](pvxs::server::SharedPV&, std::unique_ptr<pvxs::server::ExecOp>&& op,
                     pvxs::Value&&) {
        // What pvxs answers for a PV without an RPC callback.
        op->error("RPC not implemented by this PV");
    });

    pv.onPut([ctx](pvxs::server::SharedPV&, std::unique_ptr<pvxs::server::ExecOp>&& op,
                   pvxs::Value&& value) {
        // On a pvxs worker: read what the client sent, hand it to Rust, return.
        WirePut put{};
        try {
            try {
                read_put(value, put);
            } catch (std::exception& e) {
                // Rust decides: a read-only PV refuses any put, others report this.
                std::string what = e.what();
                put.has_value = false;
                put.error = rust::String::lossy(what.data(), what.size());
            }
            // What the client reports need not be UTF-8 (an account name in a legacy
            // encoding): invalid bytes become U+FFFD instead of refusing the put.
            const auto& cred = *op->credentials();
            put.peer = rust::String::lossy(cred.peer.data(), cred.peer.size());
            put.iface = rust::String::lossy(cred.iface.data(), cred.iface.size());
            put.method = rust::String::lossy(cred.method.data(), cred.method.size());
            put.account = rust::String::lossy(cred.account.data(), cred.account.size());
            fill_roles(op->credentials(), put.roles);
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
        on_put(*ctx, std::move(put), std::move(handle));
    });
    pv.onFirstConnect([ctx](pvxs::server::SharedPV&) { on_connection(*ctx, true); });
    pv.onLastDisconnect([ctx](pvxs::server::SharedPV&) { on_connection(*ctx, false); });

    return std::unique_ptr<PvHandle>(new PvHandle(std::move(pv)));
}

// An NTTable's prototype and the layout of its columns.
struct TableForm {
    pvxs::Value prototype;
    std::vector<TableColumn> columns;
};

PvHandle::PvHandle(pvxs::server::SharedPV pv) : pv_(std::move(pv)) {}

PvHandle::~PvHandle() {
    try {
        handoff::settle();
        // Clients still attached (the server may keep the PV until remove_pv) get a
        // refusal instead of a callback into a Rust side that is gone. The RPC callback
        // stays: it owns the context that a callback pvxs is running now still uses.
        pv_.onPut([](pvxs::server::SharedPV&, std::unique_ptr<pvxs::server::ExecOp>&& op,
                     pvxs::Value&&) { op->error("PV is no longer served"); });
        pv_.onFirstConnect(nullptr);
        pv_.onLastDisconnect(nullptr);
        pv_.close();
    } catch (...) {
    }
}

void PvHandle::open(const WireShape& shape, const WireUpdate& initial) {
    handoff::settle();
    auto prototype = prototype_for(shape);
    prototype->build(initial, [this](const pvxs::Value& value) { pv_.open(value); });
    prototype_ = std::move(prototype);
    table_.reset();
}

void PvHandle::open_table(rust::Slice<const WireColumn> columns, const WireUpdate& initial) {
    handoff::settle();
    std::unique_ptr<TableForm> form(new TableForm);
    form->prototype = build_table_prototype(columns, form->columns);
    // A clone keeps the labels that create() filled in; cloneEmpty() would drop them.
    auto value = form->prototype.clone();
    apply_table_update(form->columns, initial, value);
    pv_.open(value);
    prototype_.reset();
    table_ = std::move(form);
}

void PvHandle::post(const WireUpdate& update) const {
    // Collected (or queued behind work handed over to pvxs's loop), the post keeps a copy.
    const bool collect = handoff::takes();
    if (prototype_) {
        // The prototype's lock is held across this post: pvxs queues the copy it sends
        // and calls nothing of ours from within post().
        prototype_->build(update, [this, collect](const pvxs::Value& value) {
            if (collect)
                handoff::post(pv_, value.clone());
            else
                pv_.post(value);
        });
    } else if (table_) {
        auto value = table_->prototype.cloneEmpty();
        apply_table_update(table_->columns, update, value);
        if (collect)
            handoff::post(pv_, std::move(value));
        else
            pv_.post(value);
    } else {
        throw std::logic_error("PV was never opened");
    }
}

void PvHandle::post_moved(WireUpdate& update) const {
    if (prototype_ && handoff::takes()) {
        // The update moves into the work item, and the prototype builds the value where
        // the post is made: pvxs's post copies what it keeps, so nothing else is copied.
        std::unique_ptr<WireUpdate> owned(new WireUpdate(std::move(update)));
        handoff::post_update(pv_, prototype_, std::move(owned));
        return;
    }
    post(update);
}

void PvHandle::close() const {
    handoff::settle();
    pv_.close();
}

bool PvHandle::is_open() const { return pv_.isOpen(); }

WireUpdate PvHandle::current() const {
    handoff::settle();
    if (!(prototype_ || table_) || !pv_.isOpen()) throw std::logic_error("PV is not open");
    WireUpdate out{};
    if (table_)
        read_table_update(table_->columns, pv_.fetch(), out);
    else
        read_update(pv_.fetch(), out);
    return out;
}

}  // namespace mxpva
