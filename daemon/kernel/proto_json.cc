#include "kernel/proto_json.h"

#include <google/protobuf/descriptor.h>

#include <charconv>
#include <cmath>
#include <type_traits>
#include <vector>

#include "absl/strings/escaping.h"
#include "log.h"

namespace faultline::kernel {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

void AppendMessage(const Message& message, std::string& out);

// A number as JSON has it: 64-bit integers quoted (JSON's numbers are doubles), floating point in the
// shortest form that reads back the same, and its non-finite values by name.
template <typename Number>
void AppendNumber(Number value, std::string& out) {
  if constexpr (std::is_floating_point_v<Number>) {
    if (std::isnan(value)) {
      out += "\"NaN\"";
      return;
    }
    if (std::isinf(value)) {
      out += value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
      return;
    }
  }
  constexpr bool quoted = sizeof(Number) == 8 && std::is_integral_v<Number>;
  char digits[32];
  const auto end = std::to_chars(digits, digits + sizeof(digits), value).ptr;
  if (quoted) out += '"';
  out.append(digits, end);
  if (quoted) out += '"';
}

// One value of `field`: element `index` of a repeated field, or the singular value when index is -1.
void AppendValue(const Message& message, const FieldDescriptor* field, int index, std::string& out) {
  const Reflection* r = message.GetReflection();
  // The value through the singular getter or the repeated one: Reflection has a pair per type.
  auto value = [&](auto singular, auto repeated) {
    return index < 0 ? (r->*singular)(message, field) : (r->*repeated)(message, field, index);
  };
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      AppendNumber(value(&Reflection::GetInt32, &Reflection::GetRepeatedInt32), out);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      AppendNumber(value(&Reflection::GetUInt32, &Reflection::GetRepeatedUInt32), out);
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      AppendNumber(value(&Reflection::GetInt64, &Reflection::GetRepeatedInt64), out);
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      AppendNumber(value(&Reflection::GetUInt64, &Reflection::GetRepeatedUInt64), out);
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendNumber(value(&Reflection::GetDouble, &Reflection::GetRepeatedDouble), out);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendNumber(value(&Reflection::GetFloat, &Reflection::GetRepeatedFloat), out);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out += value(&Reflection::GetBool, &Reflection::GetRepeatedBool) ? "true" : "false";
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number = value(&Reflection::GetEnumValue, &Reflection::GetRepeatedEnumValue);
      const auto* named = field->enum_type()->FindValueByNumber(number);
      if (named != nullptr) {
        out += log::JsonQuote(named->name());
      } else {
        AppendNumber(number, out);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& text = index < 0 ? r->GetStringReference(message, field, &scratch)
                                          : r->GetRepeatedStringReference(message, field, index, &scratch);
      out += field->type() == FieldDescriptor::TYPE_BYTES ? "\"" + absl::Base64Escape(text) + "\""
                                                          : log::JsonQuote(text);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(index < 0 ? r->GetMessage(message, field) : r->GetRepeatedMessage(message, field, index),
                    out);
      break;
  }
}

void AppendMessage(const Message& message, std::string& out) {
  const Reflection* r = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(message, &fields);  // the fields set, by number: proto3 leaves defaults out
  out += "{";
  for (size_t i = 0; i < fields.size(); i++) {
    const FieldDescriptor* field = fields[i];
    if (i > 0) out += ",";
    out += log::JsonQuote(field->name());
    out += ":";
    if (!field->is_repeated()) {
      AppendValue(message, field, -1, out);
      continue;
    }
    out += "[";
    for (int j = 0; j < r->FieldSize(message, field); j++) {
      if (j > 0) out += ",";
      AppendValue(message, field, j, out);
    }
    out += "]";
  }
  out += "}";
}

}  // namespace

std::string ProtoJson(const Message& message) {
  std::string out;
  AppendMessage(message, out);
  return out;
}

}  // namespace faultline::kernel
