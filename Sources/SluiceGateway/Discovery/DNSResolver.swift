import Foundation
import NIOCore
import NIOPosix
import SluiceCore

/// Finds replicas in DNS (issue 17): the A and AAAA records of a Kubernetes headless Service, one
/// per ready pod, or its SRV records when the port is in DNS too. A minimal stub resolver: one
/// server (the cluster's, from /etc/resolv.conf), UDP only, one socket per query, no cache, no
/// retry, no search domains. The discovery service asks again on its interval, so a lost packet
/// costs one interval, and pools name their Services fully qualified.
///
/// NXDOMAIN is an empty list, not an error: Kubernetes DNS answers NXDOMAIN for a headless
/// Service with no ready endpoints (the DNS specification, kubernetes/dns#245, written down from
/// what kube-dns and CoreDNS do), and that is a pool scaled to zero, not a fault. A misspelt name
/// looks the same, so the caller should log a list that becomes empty. NODATA is empty too.
/// Everything else (SERVFAIL, REFUSED, a timeout, a truncated or malformed answer) throws a
/// `DNSResolverError`, and a lookup made of several queries throws if any of them does: a
/// partial list would drop live replicas, where the caller can keep its last good one.
public final class DNSResolver: Sendable {
    public let server: SocketAddress
    public let timeout: TimeAmount
    private let group: any EventLoopGroup

    /// `timeout` is per query; `addresses(of:port:)` runs its two queries at once.
    public init(server: SocketAddress, group: any EventLoopGroup, timeout: TimeAmount = .seconds(2)) {
        self.server = server
        self.group = group
        self.timeout = timeout
    }

    /// The system's DNS server: the first `nameserver` line of resolv.conf(5) with an address
    /// we can read, on port 53. In a pod that is the cluster DNS.
    public static func systemServer(resolvConf: String = "/etc/resolv.conf") -> SocketAddress? {
        (try? String(contentsOfFile: resolvConf, encoding: .utf8)).flatMap(nameserver(in:))
    }

    static func nameserver(in resolvConf: String) -> SocketAddress? {
        for line in resolvConf.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { continue }
            if let address = try? SocketAddress(ipAddress: String(fields[1]), port: 53) { return address }
        }
        return nil
    }

    /// Every address of `name` (A and AAAA, following CNAMEs inside the answer) with `port`:
    /// sorted, each once. IPv6 hosts are RFC 5952 text without brackets.
    public func addresses(of name: String, port: Int) async throws -> [ReplicaID] {
        async let v4 = query(name, type: .a)
        async let v6 = query(name, type: .aaaa)
        let hosts = try await [v4, v6].flatMap { Self.addresses(in: $0.answers, of: name) }
        return Self.sortedOnce(hosts.map { ReplicaID(host: $0, port: port) })
    }

    /// The SRV records of `name` (say `_http._tcp.model.default.svc.cluster.local`): each target
    /// with its record's port. A target's addresses come from the additional section when the
    /// server put them there, else from `addresses(of:port:)`; a target of "." (RFC 2782: no
    /// service here) gives none. Priority and weight are not used: balancing is the pool's.
    public func services(_ name: String) async throws -> [ReplicaID] {
        let answer = try await query(name, type: .srv)
        let owners = Self.aliases(of: name, in: answer.answers)
        var found: [ReplicaID] = []
        var unresolved = Set<ReplicaID>()  // target names, not yet addresses
        for record in answer.answers where owners.contains(Self.canonical(record.name)) {
            guard case .srv(_, _, let port, let target) = record.data, target != "." else { continue }
            let glue = Self.addresses(in: answer.additionals, of: target)
            if glue.isEmpty {
                unresolved.insert(ReplicaID(host: target, port: Int(port)))
            } else {
                found += glue.map { ReplicaID(host: $0, port: Int(port)) }
            }
        }
        let resolved = try await withThrowingTaskGroup(of: [ReplicaID].self) { group in
            for target in unresolved {
                group.addTask { try await self.addresses(of: target.host, port: target.port) }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        return Self.sortedOnce(found + resolved)
    }

    /// One question, on a socket of its own bound to an ephemeral port, with a fresh random id
    /// (RFC 5452: the id and the port are what a spoofer must guess). NXDOMAIN comes back as a
    /// message without records.
    func query(_ name: String, type: DNSQueryType) async throws -> DNSMessage {
        let id = UInt16.random(in: .min ... .max)
        let packet: [UInt8]
        do {
            packet = try DNSMessage.query(id: id, name: name, type: type)
        } catch {
            throw DNSResolverError.invalidName(name, error)
        }
        let pending = PendingQuery(name: name, type: type, id: id, server: server, timeout: timeout, packet: packet)
        let loop = group.next()
        let answer = loop.makePromise(of: DNSMessage.self)
        let channel: any Channel
        do {
            channel = try await DatagramBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(DNSAnswerHandler(pending, answer: answer))
                    }
                }
                .bind(host: server.protocol == .inet6 ? "::" : "0.0.0.0", port: 0).get()
        } catch {
            answer.fail(error)  // a promise must be completed, even one nobody waits for
            throw DNSResolverError.transport(name: name, type: type, "\(error)")
        }
        return try await withTaskCancellationHandler {
            defer { channel.close(promise: nil) }
            do {
                return try await answer.futureResult.get()
            } catch {
                if Task.isCancelled { throw CancellationError() }  // the socket closed under us
                throw error as? DNSResolverError ?? .transport(name: name, type: type, "\(error)")
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    /// `name` and the names its CNAME records lead to within `records`; the loop ends because
    /// each pass adds a name or stops, and there are no more names than records.
    static func aliases(of name: String, in records: [DNSRecord]) -> Set<String> {
        var names: Set<String> = [canonical(name)]
        var grown = true
        while grown {
            grown = false
            for record in records where names.contains(canonical(record.name)) {
                if case .cname(let target) = record.data, names.insert(canonical(target)).inserted { grown = true }
            }
        }
        return names
    }

    /// The A and AAAA data of `name` and its aliases, ignoring records about other names.
    static func addresses(in records: [DNSRecord], of name: String) -> [String] {
        let names = aliases(of: name, in: records)
        return records.compactMap { record in
            guard names.contains(canonical(record.name)) else { return nil }
            switch record.data {
            case .a(let host), .aaaa(let host): return host
            case .srv, .cname: return nil
            }
        }
    }

    /// Names compare without case (RFC 4343) and without a trailing dot.
    static func canonical(_ name: String) -> String {
        let lower = name.lowercased()
        return lower.count > 1 && lower.hasSuffix(".") ? String(lower.dropLast()) : lower
    }

    static func sortedOnce(_ replicas: [ReplicaID]) -> [ReplicaID] {
        Set(replicas).sorted()
    }
}

/// Why a lookup failed, in words a log line can carry. The server is the resolver's `server`.
public enum DNSResolverError: Error, Hashable, CustomStringConvertible {
    case invalidName(String, DNSMessageError)
    case timeout(name: String, type: DNSQueryType, after: TimeAmount)
    case serverFailure(name: String, type: DNSQueryType)
    /// REFUSED, NOTIMP, FORMERR or a code without a name.
    case refused(name: String, type: DNSQueryType, DNSResponseCode)
    /// The TC bit: the records did not fit in one UDP answer, and TCP is not tried.
    case truncated(name: String, type: DNSQueryType)
    case malformed(name: String, type: DNSQueryType, DNSMessageError)
    case transport(name: String, type: DNSQueryType, String)

    public var description: String {
        switch self {
        case .invalidName(let name, let error): "cannot look up \(name): \(error)"
        case .timeout(let name, let type, let after): "DNS \(type) \(name): no answer within \(after.nanoseconds / 1_000_000) ms"
        case .serverFailure(let name, let type): "DNS \(type) \(name): the server answered SERVFAIL"
        case .refused(let name, let type, let code): "DNS \(type) \(name): the server answered \(code)"
        case .truncated(let name, let type):
            "DNS \(type) \(name): the answer was truncated (TC bit: more records than one UDP answer holds; TCP is not tried)"
        case .malformed(let name, let type, let error): "DNS \(type) \(name): malformed answer: \(error)"
        case .transport(let name, let type, let reason): "DNS \(type) \(name): \(reason)"
        }
    }
}

/// What a query's handler needs to know, fixed before its socket exists.
private struct PendingQuery: Sendable {
    let name: String
    let type: DNSQueryType
    let id: UInt16
    let server: SocketAddress
    let timeout: TimeAmount
    let packet: [UInt8]
}

/// Sends one query when its socket is up and completes `answer` once: with the first response
/// that comes from the server and carries our id and question (RFC 5452 §9.1; anything else is
/// ignored, so a stray or spoofed datagram cannot end the query), or with a timeout or a failure.
private final class DNSAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let query: PendingQuery
    private let answer: EventLoopPromise<DNSMessage>
    private var timer: Scheduled<Void>?
    private var done = false

    init(_ query: PendingQuery, answer: EventLoopPromise<DNSMessage>) {
        self.query = query
        self.answer = answer
    }

    func channelActive(context: ChannelHandlerContext) {
        let query = query
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: query.timeout) { [self] in
            finish(.failure(.timeout(name: query.name, type: query.type, after: query.timeout)))
        }
        let envelope = AddressedEnvelope(remoteAddress: query.server, data: context.channel.allocator.buffer(bytes: query.packet))
        context.writeAndFlush(wrapOutboundOut(envelope)).assumeIsolated().whenFailure { [self] error in
            finish(.failure(.transport(name: query.name, type: query.type, "cannot send to \(query.server): \(error)")))
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == query.server else { return }
        let bytes = Array(envelope.data.readableBytesView)
        guard let header = try? DNSHeader(decoding: bytes), header.isResponse, header.id == query.id else { return }
        let (name, type) = (query.name, query.type)
        if header.isTruncated { return finish(.failure(.truncated(name: name, type: type))) }
        let message: DNSMessage
        do {
            message = try DNSMessage(decoding: bytes)
        } catch {
            return finish(.failure(.malformed(name: name, type: type, error)))
        }
        guard message.questions.count == 1, message.questions[0].type == type.rawValue,
            DNSResolver.canonical(message.questions[0].name) == DNSResolver.canonical(name)
        else { return }
        switch header.responseCode {
        case .noError, .nameError: finish(.success(message))
        case .serverFailure: finish(.failure(.serverFailure(name: name, type: type)))
        default: finish(.failure(.refused(name: name, type: type, header.responseCode)))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(.transport(name: query.name, type: query.type, "\(error)")))
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(.transport(name: query.name, type: query.type, "the socket closed")))
        context.fireChannelInactive()
    }

    private func finish(_ result: Result<DNSMessage, DNSResolverError>) {
        guard !done else { return }
        done = true
        timer?.cancel()
        answer.completeWith(result.mapError { $0 })
    }
}
