// A set of PV names in one array of strings (open addressing, linear probing), for the
// read gate's served names (cpp/gate.cpp). With the old, reference-counted std::string
// ABI of the pvxs wheels a slot is one pointer, and a name's characters are shared with
// the copy pvxs's map keeps: about 13 bytes a name at 10,000 names, where
// std::unordered_set took a 32-byte node and a bucket each (issue 23: memory per PV).
// Not thread-safe: the gate holds its lock around every call.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mxpva {

class NameSet {
public:
    bool contains(const std::string& name) const {
        if (live_ == 0 || !usable(name)) return false;
        const size_t mask = slots_.size() - 1;
        for (size_t i = hash(name) & mask;; i = (i + 1) & mask) {
            const std::string& s = slots_[i];
            if (s.empty()) return false;
            if (s == name) return true;
        }
    }

    void insert(const std::string& name) {
        if (!usable(name) || contains(name)) return;
        if ((used_ + 1) * 8 > slots_.size() * 7) rehash();
        place(name);
    }

    void erase(const std::string& name) {
        if (live_ == 0 || !usable(name)) return;
        const size_t mask = slots_.size() - 1;
        for (size_t i = hash(name) & mask;; i = (i + 1) & mask) {
            std::string& s = slots_[i];
            if (s.empty()) return;
            if (s == name) {
                // A tombstone: later names of the same probe run stay reachable.
                s = tomb();
                --live_;
                return;
            }
        }
    }

private:
    // An erased slot: "\0", never a PV name (names are checked, and C strings in pvxs).
    static const std::string& tomb() {
        static const std::string* t = new std::string(1, '\0');
        return *t;
    }
    static bool is_tomb(const std::string& s) { return s.size() == 1 && s[0] == '\0'; }
    // The empty name and the tombstone are never in the set.
    static bool usable(const std::string& s) { return !s.empty() && !is_tomb(s); }
    static size_t hash(const std::string& s) { return std::hash<std::string>()(s); }

    // Into the first empty or erased slot of its run; the name is not in the set.
    void place(const std::string& name) {
        const size_t mask = slots_.size() - 1;
        size_t i = hash(name) & mask;
        while (!slots_[i].empty() && !is_tomb(slots_[i])) i = (i + 1) & mask;
        if (slots_[i].empty()) ++used_;
        slots_[i] = name;
        ++live_;
    }

    // A power of two of slots, at most half full once the names are back in; erased
    // slots are dropped.
    void rehash() {
        size_t cap = 8;
        while (cap * 7 < (live_ + 1) * 16) cap *= 2;
        std::vector<std::string> old(cap);
        old.swap(slots_);
        used_ = 0;
        live_ = 0;
        for (const auto& s : old)
            if (!s.empty() && !is_tomb(s)) place(s);
    }

    std::vector<std::string> slots_;
    size_t used_ = 0;  // slots not empty: names and tombstones
    size_t live_ = 0;  // names
};

}  // namespace mxpva
