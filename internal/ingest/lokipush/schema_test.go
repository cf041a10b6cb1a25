package lokipush

import (
	"testing"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	_ "google.golang.org/protobuf/types/known/timestamppb" // registers google/protobuf/timestamp.proto

	"github.com/vigil-observability/vigil/internal/goldentest"
)

// pushSchema declares Loki's push messages from the wire format's public
// description, so that the real protobuf library, not this package's own
// test builders, encodes the request in TestDecodeSchemaEncoded.
func pushSchema(t *testing.T) protoreflect.FileDescriptor {
	t.Helper()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	u64 := descriptorpb.FieldDescriptorProto_TYPE_UINT64.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	field := func(name string, num int32, label *descriptorpb.FieldDescriptorProto_Label, typ *descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Label: label, Type: typ}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("vigil_test/push.proto"),
		Package:    proto.String("logproto"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("PushRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				field("streams", 1, rep, msg, ".logproto.StreamAdapter"),
			}},
			{Name: proto.String("StreamAdapter"), Field: []*descriptorpb.FieldDescriptorProto{
				field("labels", 1, opt, str, ""),
				field("entries", 2, rep, msg, ".logproto.EntryAdapter"),
				field("hash", 3, opt, u64, ""),
			}},
			{Name: proto.String("EntryAdapter"), Field: []*descriptorpb.FieldDescriptorProto{
				field("timestamp", 1, opt, msg, ".google.protobuf.Timestamp"),
				field("line", 2, opt, str, ""),
				field("structuredMetadata", 3, rep, msg, ".logproto.LabelPairAdapter"),
			}},
			{Name: proto.String("LabelPairAdapter"), Field: []*descriptorpb.FieldDescriptorProto{
				field("name", 1, opt, str, ""),
				field("value", 2, opt, str, ""),
			}},
		},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestDecodeSchemaEncoded decodes a request encoded by the protobuf
// library from the schema; its bytes are kept in testdata as a fixture,
// so a change of either encoder or decoder shows.
func TestDecodeSchemaEncoded(t *testing.T) {
	fd := pushSchema(t)
	msgs := fd.Messages()
	newMsg := func(name protoreflect.Name) *dynamicpb.Message {
		return dynamicpb.NewMessage(msgs.ByName(name))
	}
	tsDesc, err := protoregistry.GlobalFiles.FindDescriptorByName("google.protobuf.Timestamp")
	if err != nil {
		t.Fatal(err)
	}

	req := newMsg("PushRequest")
	streams := req.Mutable(msgs.ByName("PushRequest").Fields().ByName("streams")).List()
	for i, labels := range []string{`{job="promtail", host="node-1"}`, `{service_name="checkout"}`} {
		sd := msgs.ByName("StreamAdapter")
		s := newMsg("StreamAdapter")
		s.Set(sd.Fields().ByName("labels"), protoreflect.ValueOfString(labels))
		s.Set(sd.Fields().ByName("hash"), protoreflect.ValueOfUint64(uint64(1000+i)))
		entries := s.Mutable(sd.Fields().ByName("entries")).List()
		for j, line := range []string{"first line", `{"msg":"second","trace_id":"0af7651916cd43dd8448eb211c80319c"}`} {
			ed := msgs.ByName("EntryAdapter")
			e := newMsg("EntryAdapter")
			ts := dynamicpb.NewMessage(tsDesc.(protoreflect.MessageDescriptor))
			ts.Set(ts.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(t0+int64(j)))
			ts.Set(ts.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(int32(123456789*j)))
			e.Set(ed.Fields().ByName("timestamp"), protoreflect.ValueOfMessage(ts))
			e.Set(ed.Fields().ByName("line"), protoreflect.ValueOfString(line))
			if j == 1 {
				pd := msgs.ByName("LabelPairAdapter")
				p := newMsg("LabelPairAdapter")
				p.Set(pd.Fields().ByName("name"), protoreflect.ValueOfString("pod"))
				p.Set(pd.Fields().ByName("value"), protoreflect.ValueOfString("checkout-7d9f"))
				e.Mutable(ed.Fields().ByName("structuredMetadata")).List().Append(protoreflect.ValueOfMessage(p))
			}
			entries.Append(protoreflect.ValueOfMessage(e))
		}
		streams.Append(protoreflect.ValueOfMessage(s))
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	body := snappy.Encode(nil, raw)
	goldentest.Compare(t, "schema_push.pb.snappy", body)

	res, err := testDecoder(Options{}).Decode(body, "application/x-protobuf")
	if err != nil {
		t.Fatal(err)
	}
	goldentest.Compare(t, "schema_push.golden", []byte(dump(res)))
}
