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
    // Guards prototype_, shape_ and table_, and is never held across a call into pvxs.
    mutable std::mutex lock_;
    mutable pvxs::Value prototype_;
    // Set for an NTScalar / NTScalarArray / NTEnum; table_ for an NTTable. One at most.
    mutable std::shared_ptr<const WireShape> shape_;
    mutable std::shared_ptr<const std::vector<TableColumn>> table_;
};

std::unique_ptr<PvHandle> pv_new(rust::Box<PvContext> ctx);

}  // namespace mxpva
