#include "cpp/value.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include <pvxs/nt.h>

#include "mxpva/src/pva/ffi.rs.h"

namespace mxpva {
namespace {

using pvxs::TypeCode;
using pvxs::Value;

// display.form choices, in the order EPICS clients expect.
const char* const kFormChoices[] = {"Default", "String", "Binary", "Decimal",
                                    "Hex", "Exponential", "Engineering"};

// display.form.choices, made once (pvxs arrays are immutable and shared by reference).
const pvxs::shared_array<const std::string>& form_choices() {
    static const pvxs::shared_array<const std::string> choices = [] {
        pvxs::shared_array<std::string> a(std::begin(kFormChoices), std::end(kFormChoices));
        return a.freeze();
    }();
    return choices;
}

bool has(const WireUpdate& u, FieldBit bit) {
    return (u.fields & static_cast<uint32_t>(bit)) != 0;
}

std::string to_std(const rust::String& s) { return std::string(s.data(), s.size()); }

// Text a client sent need not be UTF-8: say so in words (cxx's own message names its types).
rust::String to_rust(const std::string& s) {
    try {
        return rust::String(s.data(), s.size());
    } catch (std::invalid_argument&) {
        throw std::invalid_argument("text of " + std::to_string(s.size()) +
                                    " bytes is not valid UTF-8");
    }
}

TypeCode scalar_code(ScalarKind kind) {
    switch (kind) {
        case ScalarKind::Bool: return TypeCode::Bool;
        case ScalarKind::Int8: return TypeCode::Int8;
        case ScalarKind::Int16: return TypeCode::Int16;
        case ScalarKind::Int32: return TypeCode::Int32;
        case ScalarKind::Int64: return TypeCode::Int64;
        case ScalarKind::UInt8: return TypeCode::UInt8;
        case ScalarKind::UInt16: return TypeCode::UInt16;
        case ScalarKind::UInt32: return TypeCode::UInt32;
        case ScalarKind::UInt64: return TypeCode::UInt64;
        case ScalarKind::Float32: return TypeCode::Float32;
        case ScalarKind::Float64: return TypeCode::Float64;
        case ScalarKind::String: return TypeCode::String;
    }
    throw std::invalid_argument("unknown scalar kind");
}

ScalarKind kind_of(TypeCode code) {
    switch (code.scalarOf().code) {
        case TypeCode::Bool: return ScalarKind::Bool;
        case TypeCode::Int8: return ScalarKind::Int8;
        case TypeCode::Int16: return ScalarKind::Int16;
        case TypeCode::Int32: return ScalarKind::Int32;
        case TypeCode::Int64: return ScalarKind::Int64;
        case TypeCode::UInt8: return ScalarKind::UInt8;
        case TypeCode::UInt16: return ScalarKind::UInt16;
        case TypeCode::UInt32: return ScalarKind::UInt32;
        case TypeCode::UInt64: return ScalarKind::UInt64;
        case TypeCode::Float32: return ScalarKind::Float32;
        case TypeCode::Float64: return ScalarKind::Float64;
        case TypeCode::String: return ScalarKind::String;
        default: break;
    }
    throw std::invalid_argument("value field has an unsupported type");
}

// Assigns (and so marks) a field only where the structure has it.
template <typename T>
void set_if(Value& fld, const T& x) {
    if (fld.valid()) fld.from(x);
}

template <typename T>
void get_if(const Value& fld, T& out) {
    if (fld.valid()) out = fld.as<T>();
}

// Copies `src` into a new pvxs array: the one copy an array makes on its way to pvxs.
template <typename T>
void write_array(Value& fld, const rust::Vec<T>& src) {
    pvxs::shared_array<T> arr(src.size());
    std::copy(src.begin(), src.end(), arr.begin());
    fld = arr.freeze();
}

template <typename T>
void read_array(const Value& fld, rust::Vec<T>& out) {
    auto arr = fld.as<pvxs::shared_array<const T>>();
    out.reserve(arr.size());
    for (const auto& x : arr) out.push_back(x);
}

pvxs::shared_array<const std::string> to_string_array(const rust::Vec<rust::String>& in) {
    pvxs::shared_array<std::string> arr(in.size());
    for (size_t i = 0; i < in.size(); i++) arr[i] = to_std(in[i]);
    return arr.freeze();
}

void read_string_array(const Value& fld, rust::Vec<rust::String>& out) {
    auto arr = fld.as<pvxs::shared_array<const std::string>>();
    out.reserve(arr.size());
    for (const auto& s : arr) out.push_back(to_rust(s));
}

// Writes the array member of `d` that `kind` uses into the array field `fld`.
void write_array_field(ScalarKind kind, const WireData& d, Value& fld) {
    switch (kind) {
        case ScalarKind::Bool: write_array(fld, d.bools); break;
        case ScalarKind::Int8: write_array(fld, d.i8s); break;
        case ScalarKind::Int16: write_array(fld, d.i16s); break;
        case ScalarKind::Int32: write_array(fld, d.i32s); break;
        case ScalarKind::Int64: write_array(fld, d.ints); break;
        case ScalarKind::UInt8: write_array(fld, d.u8s); break;
        case ScalarKind::UInt16: write_array(fld, d.u16s); break;
        case ScalarKind::UInt32: write_array(fld, d.u32s); break;
        case ScalarKind::UInt64: write_array(fld, d.uints); break;
        case ScalarKind::Float32: write_array(fld, d.f32s); break;
        case ScalarKind::Float64: write_array(fld, d.floats); break;
        case ScalarKind::String: fld = to_string_array(d.strings); break;
    }
}

// Reads the array field `fld` of element type `kind` into the member of `d` it uses.
void read_array_field(ScalarKind kind, const Value& fld, WireData& d) {
    switch (kind) {
        case ScalarKind::Bool: read_array(fld, d.bools); break;
        case ScalarKind::Int8: read_array(fld, d.i8s); break;
        case ScalarKind::Int16: read_array(fld, d.i16s); break;
        case ScalarKind::Int32: read_array(fld, d.i32s); break;
        case ScalarKind::Int64: read_array(fld, d.ints); break;
        case ScalarKind::UInt8: read_array(fld, d.u8s); break;
        case ScalarKind::UInt16: read_array(fld, d.u16s); break;
        case ScalarKind::UInt32: read_array(fld, d.u32s); break;
        case ScalarKind::UInt64: read_array(fld, d.uints); break;
        case ScalarKind::Float32: read_array(fld, d.f32s); break;
        case ScalarKind::Float64: read_array(fld, d.floats); break;
        case ScalarKind::String: read_string_array(fld, d.strings); break;
    }
}

// Reads `fld`, the `value` of an NTScalar, NTScalarArray or NTEnum, and says which it was.
void read_value_field(const Value& fld, WireData& d, ScalarKind& kind, bool& array,
                      bool& nt_enum) {
    if (!fld.valid()) throw std::invalid_argument("no value field");
    if (fld.type() == pvxs::TypeCode::Struct) {
        auto index = fld["index"];
        if (index.valid()) {
            nt_enum = true;
            array = false;
            kind = ScalarKind::Int32;
            d.index = index.as<int32_t>();
            return;
        }
    }
    nt_enum = false;
    array = fld.type().isarray();
    kind = kind_of(fld.type());
    if (!array) {
        switch (kind) {
            case ScalarKind::Bool: d.b = fld.as<bool>(); break;
            case ScalarKind::Int8:
            case ScalarKind::Int16:
            case ScalarKind::Int32:
            case ScalarKind::Int64: d.i = fld.as<int64_t>(); break;
            case ScalarKind::UInt8:
            case ScalarKind::UInt16:
            case ScalarKind::UInt32:
            case ScalarKind::UInt64: d.u = fld.as<uint64_t>(); break;
            case ScalarKind::Float32:
            case ScalarKind::Float64: d.f = fld.as<double>(); break;
            case ScalarKind::String: d.s = to_rust(fld.as<std::string>()); break;
        }
        return;
    }
    read_array_field(kind, fld, d);
}

void read_value(const Value& top, WireData& d, ScalarKind& kind, bool& array, bool& nt_enum) {
    read_value_field(top["value"], d, kind, array, nt_enum);
}

// The alarm and timeStamp members of an update, which every normative type has.
void apply_alarm_time(const WireUpdate& u, Value& v) {
    if (has(u, FieldBit::Alarm)) {
        v["alarm.severity"] = u.alarm.severity;
        v["alarm.status"] = u.alarm.status;
        v["alarm.message"] = to_std(u.alarm.message);
    }
    if (has(u, FieldBit::TimeStamp)) {
        v["timeStamp.secondsPastEpoch"] = u.time.seconds;
        v["timeStamp.nanoseconds"] = u.time.nanos;
        v["timeStamp.userTag"] = u.time.user_tag;
    } else if (has(u, FieldBit::TimeNanos)) {
        v["timeStamp.nanoseconds"] = u.time.nanos;
    }
}

void read_alarm_time(const Value& v, WireUpdate& out) {
    get_if(v["alarm.severity"], out.alarm.severity);
    get_if(v["alarm.status"], out.alarm.status);
    if (auto m = v["alarm.message"]) out.alarm.message = to_rust(m.as<std::string>());
    get_if(v["timeStamp.secondsPastEpoch"], out.time.seconds);
    get_if(v["timeStamp.nanoseconds"], out.time.nanos);
    get_if(v["timeStamp.userTag"], out.time.user_tag);
}

}  // namespace

namespace {

Value make_prototype(const WireShape& shape) {
    if (shape.nt_enum) return pvxs::nt::NTEnum{}.create();
    auto code = scalar_code(shape.kind);
    if (shape.array) code = code.arrayOf();
    // form=true adds display.precision and display.form, which display managers read.
    return pvxs::nt::NTScalar{code, shape.display, shape.control, shape.value_alarm,
                              shape.display}
        .create();
}

uint32_t shape_key(const WireShape& shape) {
    return static_cast<uint32_t>(shape.kind) | (shape.array ? 1u << 8 : 0) |
           (shape.nt_enum ? 1u << 9 : 0) | (shape.display ? 1u << 10 : 0) |
           (shape.control ? 1u << 11 : 0) | (shape.value_alarm ? 1u << 12 : 0);
}

// Unmarks the scratch value however its use ends, so the next update starts clean.
struct Unmarked {
    Value& v;
    ~Unmarked() {
        try {
            v.unmark();
        } catch (...) {
        }
    }
};

}  // namespace

Prototype::Prototype(const WireShape& shape)
    : kind_(shape.kind),
      array_(shape.array),
      nt_enum_(shape.nt_enum),
      scratch_(make_prototype(shape)) {
    auto& v = scratch_;
    auto& f = fields_;
    if (shape.nt_enum) {
        f.value = v["value.index"];
        f.choices = v["value.choices"];
    } else {
        f.value = v["value"];
    }
    f.severity = v["alarm.severity"];
    f.status = v["alarm.status"];
    f.message = v["alarm.message"];
    f.seconds = v["timeStamp.secondsPastEpoch"];
    f.nanos = v["timeStamp.nanoseconds"];
    f.user_tag = v["timeStamp.userTag"];
    f.display_low = v["display.limitLow"];
    f.display_high = v["display.limitHigh"];
    f.description = v["display.description"];
    f.units = v["display.units"];
    f.precision = v["display.precision"];
    f.form = v["display.form.index"];
    f.form_choices = v["display.form.choices"];
    f.control_low = v["control.limitLow"];
    f.control_high = v["control.limitHigh"];
    f.min_step = v["control.minStep"];
    f.active = v["valueAlarm.active"];
    f.low_alarm_limit = v["valueAlarm.lowAlarmLimit"];
    f.low_warning_limit = v["valueAlarm.lowWarningLimit"];
    f.high_warning_limit = v["valueAlarm.highWarningLimit"];
    f.high_alarm_limit = v["valueAlarm.highAlarmLimit"];
    f.low_alarm_severity = v["valueAlarm.lowAlarmSeverity"];
    f.low_warning_severity = v["valueAlarm.lowWarningSeverity"];
    f.high_warning_severity = v["valueAlarm.highWarningSeverity"];
    f.high_alarm_severity = v["valueAlarm.highAlarmSeverity"];
    f.hysteresis = v["valueAlarm.hysteresis"];
    if (!f.value.valid() || !f.severity.valid() || !f.seconds.valid())
        throw std::logic_error("prototype lacks value, alarm or timeStamp");
}

std::shared_ptr<Prototype> prototype_for(const WireShape& shape) {
    // PVs of one shape share one prototype (and so one type description), as a
    // hand-written pvxs server would; its fields are looked up here, once.
    static std::mutex lock;
    static std::map<uint32_t, std::shared_ptr<Prototype>> cache;
    const auto key = shape_key(shape);
    std::lock_guard<std::mutex> guard(lock);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, std::make_shared<Prototype>(shape)).first;
    return it->second;
}

void Prototype::build(const WireUpdate& u, const std::function<void(const Value&)>& use) {
    std::lock_guard<std::mutex> guard(lock_);
    Unmarked unmarked{scratch_};
    fill(u);
    use(scratch_);
}

void Prototype::fill(const WireUpdate& u) {
    auto& f = fields_;
    if (has(u, FieldBit::Value)) write_value(u.data, f.value);
    if (has(u, FieldBit::Choices)) set_if(f.choices, to_string_array(u.choices));
    if (has(u, FieldBit::Alarm)) {
        f.severity.from(u.alarm.severity);
        f.status.from(u.alarm.status);
        const auto& m = u.alarm.message;
        if (m.size() != message_.size() || message_.compare(0, m.size(), m.data(), m.size()) != 0)
            message_.assign(m.data(), m.size());
        f.message.from(message_);
    }
    if (has(u, FieldBit::TimeStamp)) {
        f.seconds.from(u.time.seconds);
        f.nanos.from(u.time.nanos);
        f.user_tag.from(u.time.user_tag);
    } else if (has(u, FieldBit::TimeNanos)) {
        f.nanos.from(u.time.nanos);
    }
    if (has(u, FieldBit::Display)) {
        const auto& d = u.display;
        set_if(f.display_low, d.limit_low);
        set_if(f.display_high, d.limit_high);
        set_if(f.description, to_std(d.description));
        set_if(f.units, to_std(d.units));
        set_if(f.precision, d.precision);
        set_if(f.form, d.form);
        // One array for every PV: each PV's value holds a reference, not a copy.
        if (f.form_choices.valid()) f.form_choices.from(form_choices());
    }
    if (has(u, FieldBit::Control)) {
        set_if(f.control_low, u.control.limit_low);
        set_if(f.control_high, u.control.limit_high);
        set_if(f.min_step, u.control.min_step);
    }
    if (has(u, FieldBit::ValueAlarm)) {
        const auto& a = u.value_alarm;
        set_if(f.active, a.active);
        set_if(f.low_alarm_limit, a.low_alarm_limit);
        set_if(f.low_warning_limit, a.low_warning_limit);
        set_if(f.high_warning_limit, a.high_warning_limit);
        set_if(f.high_alarm_limit, a.high_alarm_limit);
        set_if(f.low_alarm_severity, a.low_alarm_severity);
        set_if(f.low_warning_severity, a.low_warning_severity);
        set_if(f.high_warning_severity, a.high_warning_severity);
        set_if(f.high_alarm_severity, a.high_alarm_severity);
        set_if(f.hysteresis, a.hysteresis);
    }
}

void Prototype::write_value(const WireData& d, Value& fld) const {
    if (nt_enum_) {
        fld.from(d.index);
        return;
    }
    if (!array_) {
        switch (kind_) {
            case ScalarKind::Bool: fld.from(d.b); break;
            case ScalarKind::Int8:
            case ScalarKind::Int16:
            case ScalarKind::Int32:
            case ScalarKind::Int64: fld.from(d.i); break;
            case ScalarKind::UInt8:
            case ScalarKind::UInt16:
            case ScalarKind::UInt32:
            case ScalarKind::UInt64: fld.from(d.u); break;
            case ScalarKind::Float32:
            case ScalarKind::Float64: fld.from(d.f); break;
            case ScalarKind::String: fld.from(to_std(d.s)); break;
        }
        return;
    }
    write_array_field(kind_, d, fld);
}

void read_update(const Value& v, WireUpdate& out) {
    ScalarKind kind;
    bool array = false, nt_enum = false;
    read_value(v, out.data, kind, array, nt_enum);
    uint32_t fields = static_cast<uint32_t>(FieldBit::Value) |
                      static_cast<uint32_t>(FieldBit::Alarm) |
                      static_cast<uint32_t>(FieldBit::TimeStamp);
    if (nt_enum) {
        read_string_array(v["value.choices"], out.choices);
        fields |= static_cast<uint32_t>(FieldBit::Choices);
    }
    read_alarm_time(v, out);
    if (v["display"].valid()) {
        fields |= static_cast<uint32_t>(FieldBit::Display);
        get_if(v["display.limitLow"], out.display.limit_low);
        get_if(v["display.limitHigh"], out.display.limit_high);
        if (auto f = v["display.description"]) out.display.description = to_rust(f.as<std::string>());
        if (auto f = v["display.units"]) out.display.units = to_rust(f.as<std::string>());
        get_if(v["display.precision"], out.display.precision);
        get_if(v["display.form.index"], out.display.form);
    }
    if (v["control"].valid()) {
        fields |= static_cast<uint32_t>(FieldBit::Control);
        get_if(v["control.limitLow"], out.control.limit_low);
        get_if(v["control.limitHigh"], out.control.limit_high);
        get_if(v["control.minStep"], out.control.min_step);
    }
    if (v["valueAlarm"].valid()) {
        fields |= static_cast<uint32_t>(FieldBit::ValueAlarm);
        auto& a = out.value_alarm;
        get_if(v["valueAlarm.active"], a.active);
        get_if(v["valueAlarm.lowAlarmLimit"], a.low_alarm_limit);
        get_if(v["valueAlarm.lowWarningLimit"], a.low_warning_limit);
        get_if(v["valueAlarm.highWarningLimit"], a.high_warning_limit);
        get_if(v["valueAlarm.highAlarmLimit"], a.high_alarm_limit);
        get_if(v["valueAlarm.lowAlarmSeverity"], a.low_alarm_severity);
        get_if(v["valueAlarm.lowWarningSeverity"], a.low_warning_severity);
        get_if(v["valueAlarm.highWarningSeverity"], a.high_warning_severity);
        get_if(v["valueAlarm.highAlarmSeverity"], a.high_alarm_severity);
        get_if(v["valueAlarm.hysteresis"], a.hysteresis);
    }
    out.fields = fields;
}

void read_put(const Value& value, WirePut& out) {
    // One lookup of `value` (pvxs finds a field by name in a map of every field name).
    const auto fld = value["value"];
    read_value_field(fld, out.data, out.kind, out.array, out.nt_enum);
    out.has_value = fld.isMarked(true, true);
    for (auto marked : value.imarked()) {
        // nameOf scans every field name; `value`, the usual one, is known.
        if (marked.equalInst(fld))
            out.marked.push_back(rust::String("value"));
        else
            out.marked.push_back(to_rust(value.nameOf(marked)));
    }
}

Value build_table_prototype(rust::Slice<const WireColumn> columns,
                            std::vector<TableColumn>& layout) {
    pvxs::nt::NTTable table;
    layout.clear();
    for (const auto& c : columns) {
        auto name = to_std(c.name);
        auto label = to_std(c.label);
        if (name.empty()) throw std::invalid_argument("a table column has no name");
        for (const auto& seen : layout)
            if (seen.name == name) throw std::invalid_argument("duplicate table column " + name);
        table.add_column(scalar_code(c.kind), name.c_str(), label.c_str());
        layout.push_back(TableColumn{name, c.kind});
    }
    return table.create();
}

void apply_table_update(const std::vector<TableColumn>& layout, const WireUpdate& u, Value& v) {
    if (has(u, FieldBit::Table)) {
        if (u.columns.size() != layout.size())
            throw std::invalid_argument("the update has " + std::to_string(u.columns.size()) +
                                        " columns, the table " + std::to_string(layout.size()));
        auto value = v["value"];
        for (size_t i = 0; i < layout.size(); i++) {
            auto fld = value[layout[i].name];
            write_array_field(layout[i].kind, u.columns[i], fld);
        }
    }
    apply_alarm_time(u, v);
}

void read_table_update(const std::vector<TableColumn>& layout, const Value& v, WireUpdate& out) {
    auto value = v["value"];
    for (const auto& col : layout) {
        WireData d{};
        read_array_field(col.kind, value[col.name], d);
        out.columns.push_back(std::move(d));
    }
    read_alarm_time(v, out);
    out.fields = static_cast<uint32_t>(FieldBit::Table) |
                 static_cast<uint32_t>(FieldBit::Alarm) |
                 static_cast<uint32_t>(FieldBit::TimeStamp);
}

}  // namespace mxpva
