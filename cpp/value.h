// Translation between the bridge's shared structs and pvxs Values.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pvxs/data.h>

#include "rust/cxx.h"

namespace mxpva {

struct WireShape;
struct WireUpdate;
struct WireData;
struct WirePut;
struct WireColumn;
enum class ScalarKind : std::uint8_t;

// One NTTable column as the shim keeps it: the field name under `value` and its type.
struct TableColumn {
    std::string name;
    ScalarKind kind;
};

// The NTScalar / NTScalarArray / NTEnum prototype of one shape, shared by every PV of
// that shape: its fields are looked up by name once, here, and every open and post
// builds its value in one scratch Value through these handles. pvxs copies what it
// keeps (SharedPV::open and post copy the marked fields), so the scratch is unmarked
// after each use and the next starts clean.
class Prototype {
public:
    explicit Prototype(const WireShape& shape);
    Prototype(const Prototype&) = delete;
    Prototype& operator=(const Prototype&) = delete;

    // Writes the fields `update.fields` names into the scratch value (fields the
    // structure lacks, such as display limits of a string PV, are skipped), hands it to
    // `use` and unmarks it, under the prototype's lock (so `use` must not post to a PV
    // of this shape itself). `use` may throw; the scratch is unmarked all the same.
    void build(const WireUpdate& update, const std::function<void(const pvxs::Value&)>& use);

private:
    void fill(const WireUpdate& update);
    void write_value(const WireData& data, pvxs::Value& fld) const;

    // What `value` is (of the WireShape this prototype is for).
    const ScalarKind kind_;
    const bool array_;
    const bool nt_enum_;
    std::mutex lock_;
    pvxs::Value scratch_;
    // The alarm message last written: most PVs of a shape show the same one ("Good"),
    // and then hold one string between them (the wheels' old string ABI counts
    // references) instead of a copy each (issue 23: memory per PV).
    std::string message_;
    // Handles into scratch_; a field the structure lacks is an invalid Value.
    struct Fields {
        pvxs::Value value, choices;
        pvxs::Value severity, status, message;
        pvxs::Value seconds, nanos, user_tag;
        pvxs::Value display_low, display_high, description, units, precision, form,
            form_choices;
        pvxs::Value control_low, control_high, min_step;
        pvxs::Value active, low_alarm_limit, low_warning_limit, high_warning_limit,
            high_alarm_limit, low_alarm_severity, low_warning_severity, high_warning_severity,
            high_alarm_severity, hysteresis;
    } fields_;
};

// The prototype of `shape`, made on first use and kept.
std::shared_ptr<Prototype> prototype_for(const WireShape& shape);

// Reads every field of `value` back into an update (for current()).
void read_update(const pvxs::Value& value, WireUpdate& out);

// The NTTable prototype for `columns` (labels filled in); `layout` receives the columns
// in order. Throws on an empty or duplicate column name.
pvxs::Value build_table_prototype(rust::Slice<const WireColumn> columns,
                                  std::vector<TableColumn>& layout);

// Writes alarm, timeStamp and, with FieldBit::Table, every column into `out`.
void apply_table_update(const std::vector<TableColumn>& layout, const WireUpdate& update,
                        pvxs::Value& out);

// Reads a whole table back (for current()).
void read_table_update(const std::vector<TableColumn>& layout, const pvxs::Value& value,
                       WireUpdate& out);

// Reads what a client's put carries.
void read_put(const pvxs::Value& value, WirePut& out);

}  // namespace mxpva
