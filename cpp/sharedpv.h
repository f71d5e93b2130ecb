// A pvxs SharedPV and the prototype Value its posts are cloned from.
#pragma once

#include <memory>
#include <mutex>
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

class PvHandle {
public:
    explicit PvHandle(pvxs::server::SharedPV pv) : pv_(std::move(pv)) {}
    ~PvHandle();

    void open(const WireShape& shape, const WireUpdate& initial) const;
    void open_table(rust::Slice<const WireColumn> columns, const WireUpdate& initial) const;
    void post(const WireUpdate& update) const;
    void close() const;
    bool is_open() const;
    WireUpdate current() const;

    const pvxs::server::SharedPV& shared_pv() const { return pv_; }

private:
    mutable pvxs::server::SharedPV pv_;
    // Guards prototype_, table_prototype_ and table_, and is never held across a call
    // into pvxs.
    mutable std::mutex lock_;
    // Set for an NTScalar / NTScalarArray / NTEnum (shared by the PVs of its shape);
    // table_prototype_ and table_ for an NTTable. One at most.
    mutable std::shared_ptr<Prototype> prototype_;
    mutable pvxs::Value table_prototype_;
    mutable std::shared_ptr<const std::vector<TableColumn>> table_;
};

std::unique_ptr<PvHandle> pv_new(rust::Box<PvContext> ctx);

}  // namespace mxpva
