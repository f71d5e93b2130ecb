// Translation between the bridge's shared structs and pvxs Values.
#pragma once

#include <pvxs/data.h>

namespace mxpva {

struct WireShape;
struct WireUpdate;
struct WireData;
struct WirePut;

// The NTScalar / NTScalarArray / NTEnum prototype for a shape.
pvxs::Value build_prototype(const WireShape& shape);

// Writes the fields `update.fields` names into `out` (a clone of the prototype) and marks
// them. Fields the structure lacks (display limits of a string PV, ...) are skipped.
void apply_update(const WireShape& shape, const WireUpdate& update, pvxs::Value& out);

// Reads every field of `value` back into an update (for current()).
void read_update(const pvxs::Value& value, WireUpdate& out);

// Reads what a client's put carries.
void read_put(const pvxs::Value& value, WirePut& out);

}  // namespace mxpva
