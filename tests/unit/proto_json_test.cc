// ProtoJson against protobuf's own JSON parser: what it prints reads back as the same message, on
// one line, for every kind of journal line and for the API's enums, doubles and repeated scalars.
#include "kernel/proto_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/wrappers.pb.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "faultline/v1/experiment.pb.h"
#include "kernel/journal.pb.h"

namespace faultline::kernel {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Prints `message`, checks the text is one line, and parses it back into `parsed`.
void RoundTrip(const Message& message, Message& parsed) {
  const std::string text = ProtoJson(message);
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  google::protobuf::util::JsonParseOptions options;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(text, &parsed, options).ok()) << text;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(message, parsed))
      << text << "\nread back as\n"
      << parsed.DebugString();
}

journal::Device Device() {
  journal::Device device;
  device.mutable_netns()->set_path("/run/netns/a \"quoted\"\\name\twith\ncontrols\x01 and ünïcode");
  device.mutable_netns()->set_device(std::numeric_limits<uint64_t>::max());  // past a double's 53 bits
  device.mutable_netns()->set_inode((uint64_t{1} << 53) + 1);
  device.mutable_netns()->set_cookie(4096);
  device.set_name("veth0");
  device.set_ifindex(-7);
  return device;
}

std::vector<journal::Line> EveryKindOfLine() {
  std::vector<journal::Line> lines;
  auto change = [&lines](uint64_t id) {
    journal::Line& line = lines.emplace_back();
    line.set_id(id);
    journal::Change* change = line.mutable_change();
    change->set_what("what");
    change->set_time("2026-11-27T10:00:00.000000Z");
    change->set_boot_id("b7c2");
    return change;
  };
  *change(1)->mutable_clsact()->mutable_device() = Device();
  journal::Filter* filter = change(2)->mutable_filter();
  *filter->mutable_device() = Device();
  filter->set_hook("egress");
  filter->set_priority(49152);
  filter->set_handle(1);
  filter->set_name("fl_drop_egress:[812]");
  journal::Qdisc* qdisc = change(3)->mutable_qdisc();
  *qdisc->mutable_device() = Device();
  qdisc->set_kind("htb");
  qdisc->set_parent(0xffffffff);
  qdisc->set_handle(0x10000);
  journal::RootReplaced* root = change(4)->mutable_root();
  *root->mutable_device() = Device();
  root->set_kind("htb");
  root->set_original_kind("tbf");
  root->set_original_handle(0x80010000);
  for (bool is_class : {false, true}) {
    journal::TcObject* object = root->add_original();
    object->set_is_class(is_class);
    object->set_kind("tbf");
    object->set_options(std::string("\x00\xff\x10 binary\n", 10));  // bytes: base64
  }
  journal::HtbClass* htb = change(5)->mutable_htb_class();
  *htb->mutable_device() = Device();
  htb->set_classid(0x10002);
  journal::IfbDevice* ifb = change(6)->mutable_ifb();
  *ifb->mutable_netns() = Device().netns();
  ifb->set_name("ifb-veth0");
  journal::Process* process = change(7)->mutable_process();
  process->set_pid(4242);
  process->set_start_time(123456789);
  journal::Line& done = lines.emplace_back();
  done.set_id(8);
  done.mutable_done()->set_time("2026-11-27T10:00:01.000000Z");
  return lines;
}

TEST(ProtoJsonTest, EveryKindOfJournalLineReadsBackTheSame) {
  const std::vector<journal::Line> lines = EveryKindOfLine();
  // One line per kind of change the journal records, and a done line: a kind added to Change
  // without a case here fails this count.
  ASSERT_EQ(lines.size(),
            static_cast<size_t>(journal::Change::GetDescriptor()->oneof_decl(0)->field_count() + 1));
  for (const journal::Line& line : lines) {
    journal::Line parsed;
    RoundTrip(line, parsed);
  }
}

TEST(ProtoJsonTest, DefaultValuesAreLeftOutAndLargeIntegersQuoted) {
  journal::Line line;
  line.set_id(std::numeric_limits<uint64_t>::max());
  line.mutable_done();
  EXPECT_EQ(ProtoJson(line), R"({"id":"18446744073709551615","done":{}})");
  EXPECT_EQ(ProtoJson(journal::Line()), "{}");
}

TEST(ProtoJsonTest, EnumsDoublesAndRepeatedScalarsReadBackTheSame) {
  v1::Fault fault;
  v1::Target* target = fault.mutable_target();
  target->set_pid(77);
  target->set_direction(v1::DIRECTION_BOTH);
  target->add_peers("198.18.0.2/32");
  target->add_peers("2001:db8::/32");
  v1::Loss* loss = fault.mutable_loss();
  loss->set_percent(0.1);  // no short decimal form: printed to read back exactly
  loss->set_correlation(1e-300);
  loss->set_model(v1::Loss::MODEL_GILBERT_ELLIOTT);
  loss->mutable_gilbert_elliott()->set_p(100.0 / 3);
  v1::Fault parsed;
  RoundTrip(fault, parsed);
  v1::Cpu cpu;
  cpu.add_cpus(0);
  cpu.add_cpus(3);
  v1::Cpu parsed_cpu;
  RoundTrip(cpu, parsed_cpu);
  EXPECT_NE(ProtoJson(fault).find(R"("model":"MODEL_GILBERT_ELLIOTT")"), std::string::npos)
      << ProtoJson(fault);
}

TEST(ProtoJsonTest, NumbersOfEveryWidth) {
  google::protobuf::Int64Value int64;
  int64.set_value(std::numeric_limits<int64_t>::min());
  EXPECT_EQ(ProtoJson(int64), R"({"value":"-9223372036854775808"})");
  google::protobuf::Int32Value int32;
  int32.set_value(-2147483647);
  EXPECT_EQ(ProtoJson(int32), R"({"value":-2147483647})");
  google::protobuf::FloatValue single;
  single.set_value(0.1f);
  EXPECT_EQ(ProtoJson(single), R"({"value":0.1})");
  google::protobuf::DoubleValue infinite;
  infinite.set_value(-std::numeric_limits<double>::infinity());
  EXPECT_EQ(ProtoJson(infinite), R"({"value":"-Infinity"})");
  google::protobuf::DoubleValue nan;
  nan.set_value(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(ProtoJson(nan), R"({"value":"NaN"})");
  google::protobuf::BoolValue yes;
  yes.set_value(true);
  EXPECT_EQ(ProtoJson(yes), R"({"value":true})");
}

// What ProtoJson does not print as JSON wants: maps and well-known types. The journal's lines must
// hold neither, here or in any message they contain.
TEST(ProtoJsonTest, JournalLinesHoldNoMapsOrWellKnownTypes) {
  std::vector<const Descriptor*> pending{journal::Line::descriptor()};
  std::set<const Descriptor*> seen;
  while (!pending.empty()) {
    const Descriptor* type = pending.back();
    pending.pop_back();
    if (!seen.insert(type).second) continue;
    EXPECT_NE(type->file()->package(), "google.protobuf") << type->full_name();
    for (int i = 0; i < type->field_count(); i++) {
      const FieldDescriptor* field = type->field(i);
      EXPECT_FALSE(field->is_map()) << field->full_name();
      if (field->message_type() != nullptr) pending.push_back(field->message_type());
    }
  }
  EXPECT_GE(seen.size(), 10u);  // Line, Change, Done and the objects: the walk went through them
}

}  // namespace
}  // namespace faultline::kernel
