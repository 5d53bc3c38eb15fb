import NIOCore

/// What a proxy must change in the heads it forwards (RFC 9110 §7.6.1), and the request identity
/// fields Sluice adds. Heads are written as bytes straight from the received ones: fields pass
/// through as they came (name case included) unless named below.
public enum HeaderRewriter {
    /// The fields the rewriter treats specially, found by length first (each is then compared
    /// once), so a head costs one switch per field.
    enum FieldKind {
        case hopByHop, contentLength, transferEncoding, host, expect, authorization
        case xForwardedFor, xForwardedProto, xRequestID, traceparent, other
    }

    static func kind(_ name: Slice<UnsafeRawBufferPointer>) -> FieldKind {
        func match(_ candidate: StaticString, _ kind: FieldKind) -> FieldKind? {
            HTTP1Bytes.equalsLowercase(name, candidate) ? kind : nil
        }
        switch name.count {
        case 2: return match("te", .hopByHop) ?? .other
        case 4: return match("host", .host) ?? .other
        case 6: return match("expect", .expect) ?? .other
        case 7: return match("upgrade", .hopByHop) ?? match("trailer", .hopByHop) ?? .other
        case 10: return match("connection", .hopByHop) ?? match("keep-alive", .hopByHop) ?? .other
        case 11: return match("traceparent", .traceparent) ?? .other
        case 12: return match("x-request-id", .xRequestID) ?? .other
        case 13: return match("authorization", .authorization) ?? .other
        case 14: return match("content-length", .contentLength) ?? .other
        case 15: return match("x-forwarded-for", .xForwardedFor) ?? .other
        case 16: return match("proxy-connection", .hopByHop) ?? .other
        case 17: return match("transfer-encoding", .transferEncoding) ?? match("x-forwarded-proto", .xForwardedProto) ?? .other
        case 18: return match("proxy-authenticate", .hopByHop) ?? .other
        case 19: return match("proxy-authorization", .hopByHop) ?? .other
        default: return .other
        }
    }

    /// Fields the `Connection` field names (lowercased), which are hop-by-hop too, except the
    /// ones that frame the message or name the host: dropping those would let a client make the
    /// forwarded framing disagree with what the gateway parsed (request smuggling).
    static func namedInConnection(_ head: HTTP1Head, _ raw: UnsafeRawBufferPointer) -> [String] {
        guard head.connectionNamesOthers else { return [] }
        var names: [String] = []
        for field in head.fields where HTTP1Bytes.equalsLowercase(raw[field.name], "connection") {
            HTTP1Bytes.forEachListElement(raw[field.value]) { option in
                let name = String(decoding: option, as: UTF8.self).lowercased()
                if name != "content-length", name != "transfer-encoding", name != "host" { names.append(name) }
            }
        }
        return names
    }

    private static func isNamed(_ name: Slice<UnsafeRawBufferPointer>, in names: [String]) -> Bool {
        !names.isEmpty && names.contains { HTTP1Bytes.equalsLowercase(name, runtimeName: $0) }
    }

    /// Writes the request head sent to the replica and returns the request ID (kept or created).
    ///
    /// Always HTTP/1.1; hop-by-hop fields removed; `Expect: 100-continue` removed (the gateway
    /// answers it); framing written canonically: `transfer-encoding: chunked` (validated as
    /// exactly that; any `Content-Length` beside it dropped) or one `content-length: N`; `X-Forwarded-For` extended, `X-Forwarded-Proto`
    /// set; `x-request-id` and `traceparent` kept when valid, else created; `Host` added from
    /// `host` when the client sent none (HTTP/1.0).
    ///
    /// With `traceparent` (the gateway traces this request), the client's is replaced by it.
    ///
    /// For a hosted provider (`provider`), the client's `Host` and `Authorization` are dropped
    /// and the provider's written instead: the client's key never leaves the gateway.
    ///
    /// Returns the head in a new buffer with `extraCapacity` spare bytes, and the request ID.
    /// (Everything is written to locals inside the byte-access closure: state captured by it
    /// would be checked for exclusive access on every write.)
    public static func upstreamRequest(
        _ head: HTTP1Head,
        host: String,
        clientAddress: String?,
        https: Bool = false,
        random: inout FastRandom,
        allocator: ByteBufferAllocator,
        extraCapacity: Int = 0,
        contentLength: Int? = nil,
        provider: (host: String, authorization: String)? = nil,
        traceparent: String? = nil
    ) -> (head: ByteBuffer, requestID: String) {
        let replacesCredentials = provider != nil
        let replacesTraceparent = traceparent != nil
        var (out, requestID, keptTraceparent, forwardedFor) = head.bytes.withUnsafeReadableBytes { raw in
            var out = allocator.buffer(capacity: raw.count + 256 + extraCapacity)
            var requestID: String?
            var keptTraceparent = false
            var forwardedFor = ""
            let named = namedInConnection(head, raw)
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[head.method]))
            out.writeInteger(HTTP1Bytes.space)
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[head.target]))
            out.writeStaticString(" HTTP/1.1\r\n")
            for field in head.fields {
                let name = raw[field.name]
                switch kind(name) {
                case .hopByHop, .transferEncoding, .contentLength, .xForwardedProto:
                    // Framing is written once, canonically, below: a list or a leading zero
                    // that another parser could read differently never goes upstream.
                    continue
                case .expect where HTTP1Bytes.equalsLowercase(raw[field.value], "100-continue"):
                    continue
                case .xForwardedFor:
                    if !forwardedFor.isEmpty { forwardedFor += ", " }
                    forwardedFor += String(decoding: raw[field.value], as: UTF8.self)
                    continue
                case .xRequestID:
                    guard requestID == nil, (1...200).contains(field.value.count) else { continue }
                    requestID = String(decoding: raw[field.value], as: UTF8.self)
                case .traceparent:
                    guard !replacesTraceparent, !keptTraceparent, isValidTraceparent(raw[field.value]) else { continue }
                    keptTraceparent = true
                case .host, .authorization:
                    if replacesCredentials || isNamed(name, in: named) { continue }
                default:
                    if isNamed(name, in: named) { continue }
                }
                writeField(raw, field, into: &out)
            }
            return (out, requestID, keptTraceparent, forwardedFor)
        }
        if head.isChunked {
            out.writeStaticString("transfer-encoding: chunked\r\n")
        } else if let length = contentLength ?? head.contentLength {
            out.writeStaticString("content-length: ")
            out.writeString(String(length))
            out.writeStaticString("\r\n")
        }
        if let clientAddress {
            out.writeStaticString("x-forwarded-for: ")
            if !forwardedFor.isEmpty {
                out.writeString(forwardedFor)
                out.writeStaticString(", ")
            }
            out.writeString(clientAddress)
            out.writeStaticString("\r\n")
        } else if !forwardedFor.isEmpty {
            out.writeStaticString("x-forwarded-for: ")
            out.writeString(forwardedFor)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString(https ? "x-forwarded-proto: https\r\n" : "x-forwarded-proto: http\r\n")
        let created = requestID == nil
        let id = requestID ?? random.hex(bytes: 16)
        if created {
            out.writeStaticString("x-request-id: ")
            out.writeString(id)
            out.writeStaticString("\r\n")
        }
        if let traceparent {
            // The gateway's own span for this attempt: the replica's spans become its children.
            out.writeStaticString("traceparent: ")
            out.writeString(traceparent)
            out.writeStaticString("\r\n")
        } else if !keptTraceparent {
            // A request ID Sluice just made is 32 random hex digits: it doubles as the trace ID,
            // which also lets logs be joined to traces.
            out.writeStaticString("traceparent: ")
            writeTraceparent(traceID: created ? id : random.hex(bytes: 16), spanID: random.next(), into: &out)
            out.writeStaticString("\r\n")
        }
        if let provider {
            out.writeStaticString("host: ")
            out.writeString(provider.host)
            out.writeStaticString("\r\nauthorization: ")
            out.writeString(provider.authorization)
            out.writeStaticString("\r\n")
        } else if !head.hasHost {
            // HTTP/1.0 clients may omit Host; HTTP/1.1 (what is sent upstream) requires it.
            out.writeStaticString("host: ")
            out.writeString(host)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
        return (out, id)
    }

    /// How the response body is framed towards the client, when it differs from upstream.
    public enum BodyReframing: Sendable {
        case none
        /// The upstream body is chunked but the client speaks HTTP/1.0: data is sent bare and the
        /// connection closed after it.
        case unchunk
        /// The upstream body runs until close but the client speaks HTTP/1.1: it is chunked so
        /// the client connection can be kept.
        case chunk
        /// Chunked both ways, but the gateway writes the chunks itself (it reads the data to
        /// settle token usage, and may drop a part the client did not ask for).
        case rechunk

        /// Whether the gateway writes chunk framing around the data it forwards.
        public var writesChunks: Bool { self == .chunk || self == .rechunk }
    }

    /// Writes the response head sent to the client: the client's HTTP version, hop-by-hop fields
    /// removed, `x-request-id` added when the replica did not echo one, `Connection` as needed.
    public static func downstreamResponse(
        _ head: HTTP1Head,
        clientMinorVersion: Int,
        requestID: String,
        keepAlive: Bool,
        reframing: BodyReframing,
        extraFields: [(String, String)] = [],
        allocator: ByteBufferAllocator,
        extraCapacity: Int = 0
    ) -> ByteBuffer {
        var (out, hasRequestID) = head.bytes.withUnsafeReadableBytes { raw in
            var out = allocator.buffer(capacity: raw.count + 96 + extraCapacity)
            var hasRequestID = false
            let named = namedInConnection(head, raw)
            out.writeStaticString(clientMinorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[head.statusText]))
            out.writeStaticString("\r\n")
            for field in head.fields {
                let name = raw[field.name]
                switch kind(name) {
                case .hopByHop:
                    continue
                case .transferEncoding where reframing == .unchunk:
                    continue
                case .contentLength:
                    // Written once below, and only where it frames the body (RFC 9112 §6.3: not
                    // beside a transfer coding, nor when the body is re-framed).
                    continue
                case .xRequestID:
                    hasRequestID = true
                case .transferEncoding:
                    break
                default:
                    if isNamed(name, in: named) { continue }
                }
                writeField(raw, field, into: &out)
            }
            return (out, hasRequestID)
        }
        if reframing == .chunk {
            out.writeStaticString("transfer-encoding: chunked\r\n")
        } else if reframing == .none, let length = head.contentLength {
            out.writeStaticString("content-length: ")
            out.writeString(String(length))
            out.writeStaticString("\r\n")
        }
        if !hasRequestID {
            out.writeStaticString("x-request-id: ")
            out.writeString(requestID)
            out.writeStaticString("\r\n")
        }
        for (name, value) in extraFields {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        if !keepAlive {
            out.writeStaticString("connection: close\r\n")
        } else if clientMinorVersion == 0 {
            out.writeStaticString("connection: keep-alive\r\n")
        }
        out.writeStaticString("\r\n")
        return out
    }

    @inline(__always)
    private static func writeField(_ raw: UnsafeRawBufferPointer, _ field: HTTP1Head.Field, into out: inout ByteBuffer) {
        out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[field.name]))
        out.writeStaticString(": ")
        out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[field.value]))
        out.writeStaticString("\r\n")
    }

    /// `00-<trace>-<span>-01`; `traceID` is 32 lowercase hex digits.
    public static func writeTraceparent(traceID: String, spanID: UInt64, into out: inout ByteBuffer) {
        let span = spanID == 0 ? 1 : spanID
        out.writeStaticString("00-")
        out.writeString(traceID)
        out.writeInteger(UInt8(ascii: "-"))
        for shift in stride(from: 60, through: 0, by: -4) {
            let digit = UInt8((span >> UInt64(shift)) & 0xF)
            out.writeInteger(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10)
        }
        out.writeStaticString("-01")
    }

    /// `00-<trace>-<span>-01` as a string (tests and logs).
    public static func makeTraceparent(traceID: String, spanID: UInt64) -> String {
        var buffer = ByteBuffer()
        writeTraceparent(traceID: traceID, spanID: spanID, into: &buffer)
        return String(buffer: buffer)
    }

    public static func isValidTraceparent(_ value: String?) -> Bool {
        guard let value else { return false }
        return Array(value.utf8).withUnsafeBytes { isValidTraceparent($0[...]) }
    }

    /// W3C Trace Context `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`, IDs not all zero.
    public static func isValidTraceparent(_ bytes: Slice<UnsafeRawBufferPointer>) -> Bool {
        guard bytes.count == 55 else { return false }
        let base = bytes.startIndex
        func at(_ offset: Int) -> UInt8 { bytes[base + offset] }
        guard at(2) == UInt8(ascii: "-"), at(35) == UInt8(ascii: "-"), at(52) == UInt8(ascii: "-") else { return false }
        func isHex(_ range: Range<Int>) -> Bool {
            range.allSatisfy { offset in
                let byte = at(offset)
                return (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            }
        }
        guard isHex(0..<2), isHex(3..<35), isHex(36..<52), isHex(53..<55) else { return false }
        guard !(at(0) == UInt8(ascii: "f") && at(1) == UInt8(ascii: "f")) else { return false }
        return (3..<35).contains { at($0) != UInt8(ascii: "0") } && (36..<52).contains { at($0) != UInt8(ascii: "0") }
    }
}
