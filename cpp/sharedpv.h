// A pvxs SharedPV and the prototype Value its posts are cloned from.
#pragma once

#include <memory>
#include <vector>

#include <pvxs/data.h>
#include <pvxs/sharedpv.h>

#include "rust/cxx.h"

namespace mxpva {

struct PvContext;
struct WireShape;
struct WireUpdate;
struct WireColumn;
struct TableColumn;
class Prototype;
struct TableForm;

// One PV. open() and open_table() change what the PV is, and are called only while
// nothing else uses it (the Rust side holds it `Pin<&mut>`, src/pva/ffi.rs); the const
// methods only read it, from any thread. So it needs no lock of its own: it is small,
// one of these per served PV (issue 23: memory per PV).
class PvHandle {
public:
    explicit PvHandle(pvxs::server::SharedPV pv);
    ~PvHandle();

    void open(const WireShape& shape, const WireUpdate& initial);
    void open_table(rust::Slice<const WireColumn> columns, const WireUpdate& initial);
    void post(const WireUpdate& update) const;
    // post() of an update the caller no longer needs: see ffi.rs.
    void post_moved(WireUpdate& update) const;
    void close() const;
    bool is_open() const;
    WireUpdate current() const;

    const pvxs::server::SharedPV& shared_pv() const { return pv_; }

private:
    mutable pvxs::server::SharedPV pv_;
    // Set for an NTScalar / NTScalarArray / NTEnum (shared by the PVs of its shape);
    // table_ for an NTTable. One at most.
    std::shared_ptr<Prototype> prototype_;
    std::unique_ptr<const TableForm> table_;
};

std::unique_ptr<PvHandle> pv_new(rust::Box<PvContext> ctx);

}  // namespace mxpva
