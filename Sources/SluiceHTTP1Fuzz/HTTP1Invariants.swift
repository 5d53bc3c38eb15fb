import NIOCore
import SluiceHTTP1

/// What must hold for any input, as a request stream and as a response stream. Each check
/// traps when it fails, so libFuzzer saves the input.
///
/// - Parsing never crashes (the sanitizers watch memory; Swift traps on overflow and bounds).
/// - The events (heads, bodies, the error) are the same whether the input arrives in one read
///   or cut in two; the input's last byte picks the cut, so mutations explore cut points.
/// - No more body bytes come out than went in, and a message framed by a length that ended has
///   exactly that many.
/// - Passing chunk framing through fails where, and ends what, taking it off does.
/// - Every head the parser accepts, once rewritten for the next hop (`HeaderRewriter`), parses
///   again (so has no `chunked` but a last one: the parser refuses others), frames its body the
///   same way, and carries one framing field and no hop-by-hop field: nothing a next hop could
///   read a different message boundary from, or take for the gateway's connection options.
enum HTTP1Invariants {
    /// The gateway's default request head limit; also tried small, to reach the limit paths.
    static let maxHeadBytes = 16_384
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "te", "upgrade", "trailer", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    ]

    static func check(_ input: [UInt8]) {
        let cut = input.isEmpty ? 0 : input.count * Int(input[input.count - 1]) / 256
        let limit = input.count % 4 == 0 ? 64 + input.count % 64 : maxHeadBytes
        for role in [HTTP1Parser.Role.request, .response] {
            let whole = FuzzRun(input, role: role, cut: nil, framed: false, maxHeadBytes: limit)
            let split = FuzzRun(input, role: role, cut: cut, framed: false, maxHeadBytes: limit)
            let framed = FuzzRun(input, role: role, cut: cut, framed: true, maxHeadBytes: limit)
            precondition(whole.sameEvents(as: split), "\(role): different events when cut at \(cut)")
            precondition(framed.error == whole.error && framed.bodies.count == whole.bodies.count, "\(role): framed bodies end differently")
            for run in [whole, split, framed] {
                precondition(run.bodyBytesOut <= input.count && run.largestBodyCount <= input.count, "\(role): more body than input")
            }
            for (head, body) in zip(whole.heads, whole.bodies) where hasLengthFramedBody(head, role: role) {
                precondition(body.count == head.contentLength, "\(role): body of \(body.count) bytes for a length of \(head.contentLength!)")
            }
            for (head, untilClose) in zip(whole.heads, whole.untilClose) {
                switch role {
                case .request: checkUpstream(head)
                case .response: checkDownstream(head, untilClose: untilClose)
                }
            }
        }
    }

    static func hasLengthFramedBody(_ head: HTTP1Head, role: HTTP1Parser.Role) -> Bool {
        guard head.contentLength != nil, !head.isChunked, !head.hasTransferEncoding else { return false }
        return role == .request || ![101, 204, 304].contains(head.status)
    }

    /// The request as the gateway sends it to a replica.
    static func checkUpstream(_ head: HTTP1Head) {
        var random = FastRandom()
        let (out, _) = HeaderRewriter.upstreamRequest(
            head, host: "replica:8000", clientAddress: "192.0.2.1", random: &random, allocator: ByteBufferAllocator())
        guard let (sent, _) = reparse(out, role: .request) else { preconditionFailure("a rewritten request does not parse") }
        let names = fieldNames(sent)
        precondition(count("content-length", names) + count("transfer-encoding", names) <= 1, "a rewritten request has two framing fields")
        precondition(sent.isChunked == head.isChunked && sent.contentLength == head.contentLength, "a rewritten request is framed differently")
        checkConnectionFields(from: head, sent: names, kept: ["x-request-id", "traceparent", "x-forwarded-for", "x-forwarded-proto"])
    }

    /// The response as the gateway sends it to an HTTP/1.1 and to an HTTP/1.0 client, framed
    /// as `ProxyServerHandler.upstreamReceivedHead` chooses.
    static func checkDownstream(_ head: HTTP1Head, untilClose: Bool) {
        guard head.status != 101 else { return }  // never forwarded: the gateway answers 502
        let hasBody = head.status != 204 && head.status != 304
        for clientMinor in [1, 0] {
            let reframing: HeaderRewriter.BodyReframing =
                clientMinor == 0 ? (head.isChunked && !untilClose && hasBody ? .unchunk : .none) : (untilClose ? .chunk : .none)
            let out = HeaderRewriter.downstreamResponse(
                head, clientMinorVersion: clientMinor, requestID: "fuzz", keepAlive: !untilClose, reframing: reframing,
                allocator: ByteBufferAllocator())
            guard let (sent, sentUntilClose) = reparse(out, role: .response) else { preconditionFailure("a rewritten response does not parse") }
            let names = fieldNames(sent)
            precondition(count("content-length", names) <= 1, "a rewritten response has two content-lengths")
            precondition(count("content-length", names) == 0 || count("transfer-encoding", names) == 0, "a rewritten response has both framings")
            checkConnectionFields(from: head, sent: names.filter { $0 != "connection" }, kept: ["x-request-id"])
            if hasBody, clientMinor == 1 {
                precondition(!sentUntilClose, "an HTTP/1.1 client would wait for the close")
                precondition(sent.contentLength == head.contentLength || sent.isChunked, "a rewritten response is framed differently")
            }
        }
    }

    /// No hop-by-hop field and nothing the original head's `Connection` named, except the
    /// framing and `Host` (kept so that naming them cannot change the framing) and the identity
    /// fields the gateway writes itself (`kept`: naming them is how a client would strip them).
    static func checkConnectionFields(from head: HTTP1Head, sent names: [String], kept: Set<String>) {
        precondition(hopByHop.isDisjoint(with: names), "a hop-by-hop field is forwarded")
        let options = head.fields.filter { head.string($0.name).lowercased() == "connection" }
            .flatMap { head.value($0).split(separator: ",") }
            .map { trimmed($0).lowercased() }
        for option in options where !["content-length", "transfer-encoding", "host"].contains(option) && !kept.contains(option) {
            precondition(!names.contains(option), "a field named in Connection is forwarded")
        }
    }

    static func trimmed(_ text: Substring) -> Substring {
        let isOWS: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !isOWS($0) }), let last = text.lastIndex(where: { !isOWS($0) }) else { return "" }
        return text[first...last]
    }

    /// The head a next hop reads from `bytes` (whose size is its limit), and whether its body
    /// runs until the close.
    static func reparse(_ bytes: ByteBuffer, role: HTTP1Parser.Role) -> (HTTP1Head, Bool)? {
        var parser = HTTP1Parser(role: role, maxHeadBytes: bytes.readableBytes)
        var buffer = bytes
        guard case .head(let head)? = try? parser.next(&buffer) else { return nil }
        return (head, parser.readsUntilClose)
    }

    static func fieldNames(_ head: HTTP1Head) -> [String] {
        head.fields.map { head.string($0.name).lowercased() }
    }

    static func count(_ name: String, _ names: [String]) -> Int {
        names.reduce(0) { $0 + ($1 == name ? 1 : 0) }
    }
}
