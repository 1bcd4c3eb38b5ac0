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
  const bool one = index < 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      AppendNumber(one ? r->GetInt32(message, field) : r->GetRepeatedInt32(message, field, index), out);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      AppendNumber(one ? r->GetUInt32(message, field) : r->GetRepeatedUInt32(message, field, index), out);
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      AppendNumber(one ? r->GetInt64(message, field) : r->GetRepeatedInt64(message, field, index), out);
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      AppendNumber(one ? r->GetUInt64(message, field) : r->GetRepeatedUInt64(message, field, index), out);
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendNumber(one ? r->GetDouble(message, field) : r->GetRepeatedDouble(message, field, index), out);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendNumber(one ? r->GetFloat(message, field) : r->GetRepeatedFloat(message, field, index), out);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out +=
          (one ? r->GetBool(message, field) : r->GetRepeatedBool(message, field, index)) ? "true" : "false";
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number =
          one ? r->GetEnumValue(message, field) : r->GetRepeatedEnumValue(message, field, index);
      const auto* value = field->enum_type()->FindValueByNumber(number);
      if (value != nullptr) {
        out += log::JsonQuote(value->name());
      } else {
        AppendNumber(number, out);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& text = one ? r->GetStringReference(message, field, &scratch)
                                    : r->GetRepeatedStringReference(message, field, index, &scratch);
      out += field->type() == FieldDescriptor::TYPE_BYTES ? "\"" + absl::Base64Escape(text) + "\""
                                                          : log::JsonQuote(text);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(one ? r->GetMessage(message, field) : r->GetRepeatedMessage(message, field, index), out);
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
