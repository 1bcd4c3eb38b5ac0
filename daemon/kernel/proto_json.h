// A protobuf message as one line of proto3 JSON (proto field names, default values left out), what
// util::MessageToJsonString prints and util::JsonStringToMessage reads back, for the messages the
// journal writes: scalars, strings, bytes, enums, nested and repeated messages. Not maps, nor
// well-known types (Timestamp, Duration, Any, wrappers), which JSON spells their own way; the unit
// test checks that the journal's lines hold neither. Protobuf's printer
// converts through a binary copy and a type resolver: 46 µs a journal line here, which made a tenth
// of an inject (bench/inject-latency); this walks the message's reflection, a few µs.
#pragma once

#include <google/protobuf/message.h>

#include <string>

namespace faultline::kernel {

std::string ProtoJson(const google::protobuf::Message& message);

}  // namespace faultline::kernel
