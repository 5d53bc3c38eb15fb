import NIOHTTP1

/// What a proxy must change in the headers it forwards (RFC 9110 §7.6.1), and the request
/// identity headers Sluice adds. Framing headers (`content-length`, `transfer-encoding`) are kept:
/// NIO's encoders frame the forwarded body from them.
enum HeaderRewriter {
    /// ASCII case-insensitive equality without allocating (header names are ASCII).
    static func equalsIgnoringASCIICase(_ a: some StringProtocol, _ lowercase: some StringProtocol) -> Bool {
        let left = a.utf8
        let right = lowercase.utf8
        guard left.count == right.count else { return false }
        for (x, y) in zip(left, right) {
            let folded = (x >= 0x41 && x <= 0x5A) ? x | 0x20 : x
            if folded != y { return false }
        }
        return true
    }

    /// The fixed hop-by-hop name `name` spells (any case), found by length first: header
    /// lists are scanned twice per request, so this avoids comparing every header with every name.
    static func fixedHopByHop(_ name: String) -> String? {
        func match(_ candidate: String) -> String? {
            equalsIgnoringASCIICase(name, candidate) ? candidate : nil
        }
        switch name.utf8.count {
        case 2: return match("te")
        case 7: return match("upgrade") ?? match("trailer")
        case 10: return match("connection") ?? match("keep-alive")
        case 16: return match("proxy-connection")
        case 18: return match("proxy-authenticate")
        case 19: return match("proxy-authorization")
        default: return nil
        }
    }

    /// Removes hop-by-hop headers, including those the `Connection` header names.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var found: [String] = []
        var namesOthers = false
        for (name, value) in headers {
            guard let fixed = fixedHopByHop(name) else { continue }
            found.append(fixed)
            if fixed == "connection" {
                for token in value.split(separator: ",") {
                    let trimmed = token.trimmedSpaces()
                    if !equalsIgnoringASCIICase(trimmed, "keep-alive"), !equalsIgnoringASCIICase(trimmed, "close") {
                        namesOthers = true
                    }
                }
            }
        }
        guard !found.isEmpty else { return }
        if !namesOthers {
            // The common case (`Connection: keep-alive`): remove in place.
            for name in found { headers.remove(name: name) }
            return
        }
        // Headers named in `Connection` are hop-by-hop too, except the ones that frame the
        // message or name the host: dropping those would let a client make the forwarded body's
        // framing disagree with what the gateway parsed (request smuggling).
        let named: [Substring] = headers["connection"].flatMap { value in
            value.split(separator: ",").map { Substring($0.trimmedSpaces().lowercased()) }
        }.filter { $0 != "content-length" && $0 != "transfer-encoding" && $0 != "host" }
        var kept = HTTPHeaders()
        kept.reserveCapacity(headers.count)
        for (name, value) in headers where fixedHopByHop(name) == nil && !named.contains(where: { equalsIgnoringASCIICase(name, $0) }) {
            kept.add(name: name, value: value)
        }
        headers = kept
    }

    /// Makes the request's framing unambiguous before anything is forwarded: a
    /// `Transfer-Encoding` must be exactly `chunked` (it is then re-written in canonical form and
    /// any `Content-Length` dropped, as RFC 9112 §6.3 says the encoding wins). Returns the error
    /// to answer with otherwise.
    static func normalizeFraming(_ head: inout HTTPRequestHead) -> GatewayError? {
        let codings = head.headers["transfer-encoding"]
        guard !codings.isEmpty else { return nil }
        let joined = codings.joined(separator: ",").split(separator: ",").map { $0.trimmedSpaces().lowercased() }
        guard joined == ["chunked"] else {
            return .unsupportedTransferEncoding(codings.joined(separator: ", "))
        }
        head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        head.headers.remove(name: "content-length")
        return nil
    }

    /// Removes `Expect: 100-continue` (the gateway answers it itself) and says whether it was there.
    static func takeExpectContinue(_ head: inout HTTPRequestHead) -> Bool {
        guard let expect = head.headers.first(name: "expect"),
              equalsIgnoringASCIICase(expect.trimmedSpaces(), "100-continue")
        else { return false }
        head.headers.remove(name: "expect")
        return true
    }

    /// The request head sent to the replica. Returns the request ID (kept or created).
    static func upstreamRequest(
        _ head: inout HTTPRequestHead,
        clientAddress: String?,
        random: inout FastRandom
    ) -> String {
        removeHopByHop(&head.headers)
        head.version = .http1_1
        if let clientAddress {
            if let existing = head.headers.first(name: "x-forwarded-for") {
                head.headers.replaceOrAdd(name: "x-forwarded-for", value: existing + ", " + clientAddress)
            } else {
                head.headers.add(name: "x-forwarded-for", value: clientAddress)
            }
        }
        head.headers.replaceOrAdd(name: "x-forwarded-proto", value: "http")
        let requestID: String
        var created = false
        let existingID = head.headers.first(name: "x-request-id")
        if let existingID, !existingID.isEmpty, existingID.utf8.count <= 200 {
            requestID = existingID
        } else {
            requestID = random.hex(bytes: 16)
            created = true
            if existingID == nil {
                head.headers.add(name: "x-request-id", value: requestID)
            } else {
                head.headers.replaceOrAdd(name: "x-request-id", value: requestID)
            }
        }
        let traceparent = head.headers.first(name: "traceparent")
        if !isValidTraceparent(traceparent) {
            // A request ID Sluice just made is 32 random hex digits: it doubles as the trace ID,
            // which also lets logs be joined to traces.
            let value = makeTraceparent(traceID: created ? requestID : random.hex(bytes: 16), spanID: random.next())
            if traceparent == nil {
                head.headers.add(name: "traceparent", value: value)
            } else {
                head.headers.replaceOrAdd(name: "traceparent", value: value)
            }
        }
        return requestID
    }

    /// The response head sent to the client.
    static func downstreamResponse(
        _ head: inout HTTPResponseHead,
        requestVersion: HTTPVersion,
        requestID: String,
        keepAlive: Bool
    ) {
        removeHopByHop(&head.headers)
        head.version = requestVersion
        if !head.headers.contains(name: "x-request-id") {
            head.headers.add(name: "x-request-id", value: requestID)
        }
        if !keepAlive {
            head.headers.add(name: "connection", value: "close")
        } else if requestVersion == .http1_0 {
            head.headers.add(name: "connection", value: "keep-alive")
        }
    }

    /// `00-<trace>-<span>-01` in one allocation.
    static func makeTraceparent(traceID: String, spanID: UInt64) -> String {
        let digits = Array("0123456789abcdef".utf8)
        let span = spanID == 0 ? 1 : spanID
        return String(unsafeUninitializedCapacity: 55) { buffer in
            var index = 0
            for byte in "00-".utf8 { buffer[index] = byte; index += 1 }
            for byte in traceID.utf8.prefix(32) { buffer[index] = byte; index += 1 }
            buffer[index] = UInt8(ascii: "-"); index += 1
            for shift in stride(from: 60, through: 0, by: -4) {
                buffer[index] = digits[Int((span >> UInt64(shift)) & 0xF)]; index += 1
            }
            for byte in "-01".utf8 { buffer[index] = byte; index += 1 }
            return index
        }
    }

    /// W3C Trace Context `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`, IDs not all zero.
    static func isValidTraceparent(_ value: String?) -> Bool {
        guard let value else { return false }
        let bytes = Array(value.utf8)
        guard bytes.count == 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else {
            return false
        }
        func isHex(_ range: Range<Int>) -> Bool {
            bytes[range].allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
        }
        guard isHex(0..<2), isHex(3..<35), isHex(36..<52), isHex(53..<55) else { return false }
        guard !(bytes[0] == UInt8(ascii: "f") && bytes[1] == UInt8(ascii: "f")) else { return false }
        return bytes[3..<35].contains { $0 != UInt8(ascii: "0") } && bytes[36..<52].contains { $0 != UInt8(ascii: "0") }
    }
}
