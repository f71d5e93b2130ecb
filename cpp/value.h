// Translation between the bridge's shared structs and pvxs Values.
#pragma once

#include <cstdint>
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

// The NTScalar / NTScalarArray / NTEnum prototype for a shape.
pvxs::Value build_prototype(const WireShape& shape);

// Writes the fields `update.fields` names into `out` (a clone of the prototype) and marks
// them. Fields the structure lacks (display limits of a string PV, ...) are skipped.
void apply_update(const WireShape& shape, const WireUpdate& update, pvxs::Value& out);

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
