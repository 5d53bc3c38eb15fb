/// Reads the spans out of an OTLP/protobuf `ExportTraceServiceRequest` by the protobuf wire
/// format and the field numbers of opentelemetry-proto's trace.proto, so the tests check what a
/// collector would decode without depending on swift-otel's internal generated types.
enum OTLPReader {
    struct Span {
        var traceID: String
        var spanID: String
        var parentSpanID: String
        var name: String
        /// `SpanKind`: 2 server, 3 client.
        var kind: Int
        var events: [(name: String, attributes: [String: String])]
        var attributes: [String: String]
    }

    /// `ExportTraceServiceRequest.resource_spans` (1) → `ResourceSpans.scope_spans` (2) →
    /// `ScopeSpans.spans` (2).
    static func spans(_ body: [UInt8]) -> [Span] {
        var spans: [Span] = []
        for resource in fields(body) where resource.number == 1 {
            for scope in fields(resource.bytes) where scope.number == 2 {
                for span in fields(scope.bytes) where span.number == 2 {
                    spans.append(self.span(span.bytes))
                }
            }
        }
        return spans
    }

    private static func span(_ bytes: [UInt8]) -> Span {
        var span = Span(traceID: "", spanID: "", parentSpanID: "", name: "", kind: 0, events: [], attributes: [:])
        for field in fields(bytes) {
            switch field.number {
            case 1: span.traceID = hex(field.bytes)
            case 2: span.spanID = hex(field.bytes)
            case 4: span.parentSpanID = hex(field.bytes)
            case 5: span.name = String(decoding: field.bytes, as: UTF8.self)
            case 6: span.kind = Int(field.varint)
            case 9: if let (key, value) = keyValue(field.bytes) { span.attributes[key] = value }
            case 11:
                var name = ""
                var attributes: [String: String] = [:]
                for part in fields(field.bytes) {
                    if part.number == 2 { name = String(decoding: part.bytes, as: UTF8.self) }
                    if part.number == 3, let (key, value) = keyValue(part.bytes) { attributes[key] = value }
                }
                span.events.append((name, attributes))
            default: break
            }
        }
        return span
    }

    /// `KeyValue { key = 1; AnyValue value = 2 }`, `AnyValue { string_value = 1; bool_value = 2;
    /// int_value = 3 }`, as text (the gateway sets no other kind).
    private static func keyValue(_ bytes: [UInt8]) -> (String, String)? {
        var key: String?
        var value = ""
        for field in fields(bytes) {
            if field.number == 1 { key = String(decoding: field.bytes, as: UTF8.self) }
            if field.number == 2 {
                for any in fields(field.bytes) {
                    switch any.number {
                    case 1: value = String(decoding: any.bytes, as: UTF8.self)
                    case 2: value = any.varint == 0 ? "false" : "true"
                    case 3: value = String(Int64(bitPattern: any.varint))
                    default: break
                    }
                }
            }
        }
        return key.map { ($0, value) }
    }

    struct Field {
        var number: Int
        var varint: UInt64 = 0
        var bytes: [UInt8] = []
    }

    /// The top-level fields of one message (varint, 64-bit, length-delimited, 32-bit).
    static func fields(_ bytes: [UInt8]) -> [Field] {
        var out: [Field] = []
        var index = 0
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
                if shift > 63 { return nil }
            }
            return nil
        }
        while index < bytes.count, let tag = varint() {
            var field = Field(number: Int(tag >> 3))
            switch tag & 7 {
            case 0:
                guard let value = varint() else { return out }
                field.varint = value
            case 1:
                guard index + 8 <= bytes.count else { return out }
                field.bytes = Array(bytes[index..<index + 8])
                index += 8
            case 2:
                guard let length = varint(), index + Int(length) <= bytes.count else { return out }
                field.bytes = Array(bytes[index..<index + Int(length)])
                index += Int(length)
            case 5:
                guard index + 4 <= bytes.count else { return out }
                field.bytes = Array(bytes[index..<index + 4])
                index += 4
            default:
                return out
            }
            out.append(field)
        }
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
