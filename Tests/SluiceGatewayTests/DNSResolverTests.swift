import Foundation
import NIOCore
import NIOPosix
import SluiceCore
import SluiceTesting
import Testing
@testable import SluiceGateway

/// A dnsmasq of our own on 127.0.0.1, authoritative for `replicas.test` (so a name it does not
/// know is NXDOMAIN, as a headless Service without ready pods is), stopped at the end.
///
/// It runs under `/bin/sh`, never directly. Foundation's `Process` (Linux) learns that a child
/// exited when the child's end of a socket pair closes, and then reaps it with a blocking
/// `waitpid` on the one thread that does this for every child. dnsmasq closes every descriptor it
/// inherits as it starts, so spawned directly it parks that thread until it dies, and no other
/// child's exit (redis-server, python) is seen meanwhile: a full `swift test` hung for 20 minutes
/// that way. The shell keeps its end open until dnsmasq and the shell are both gone.
final class DnsmasqProcess {
    static let binary = "/usr/sbin/dnsmasq"
    static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    static let records = [
        "--host-record=model-0.replicas.test,10.0.0.1,fd00::1",
        "--host-record=model-1.replicas.test,10.0.0.2",
        // The headless Service's own name: one address per pod.
        "--host-record=replicas.test,10.0.0.2", "--host-record=replicas.test,10.0.0.1", "--host-record=replicas.test,fd00::1",
        "--srv-host=_http._tcp.replicas.test,model-0.replicas.test,8000",
        "--srv-host=_http._tcp.replicas.test,model-1.replicas.test,8001",
        // The same target and port twice (two priorities).
        "--srv-host=_dup._tcp.replicas.test,model-0.replicas.test,8000,1",
        "--srv-host=_dup._tcp.replicas.test,model-0.replicas.test,8000,2",
        // A target that is an alias: dnsmasq sends no glue for it, so it is looked up.
        "--cname=alias.replicas.test,model-0.replicas.test",
        "--srv-host=_alias._tcp.replicas.test,alias.replicas.test,9000",
        // No target: RFC 2782's "." (the service is decidedly not here).
        "--srv-host=_none._tcp.replicas.test",
    ]

    let server: SocketAddress
    private let process: Process

    private init(server: SocketAddress, process: Process) {
        self.server = server
        self.process = process
    }

    /// At a free UDP port; up when it answers. A port taken between our look and its bind makes
    /// it exit at once, and then it is tried on another (three times at most).
    /// - Parameters: `port`: this one (a restart with other records), else a free one; `records`:
    ///   dnsmasq's record options.
    static func start(port: Int? = nil, records: [String] = records, probe name: String = "model-1.replicas.test") async throws -> DnsmasqProcess {
        var reason = ""
        for _ in 0..<3 {
            let probe = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: port ?? 0).get()
            let server = probe.localAddress!
            try await probe.close()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            // Not the last command, so no shell runs it with exec.
            process.arguments = ["-c", "\(binary) \"$@\"; exit $?", "dnsmasq"] + [
                "--no-daemon", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
                "--port=\(server.port!)", "--listen-address=127.0.0.1", "--bind-interfaces", "--local=/replicas.test/",
            ] + records
            let errors = Pipe()
            process.standardOutput = FileHandle.nullDevice
            process.standardError = errors
            try process.run()
            let dnsmasq = DnsmasqProcess(server: server, process: process)
            let resolver = DNSResolver(server: server, group: MultiThreadedEventLoopGroup.singleton, timeout: .milliseconds(100))
            let up = await eventually(timeout: .seconds(5)) {
                if !process.isRunning { return true }
                return (try? await resolver.query(name, type: .a)) != nil
            }
            if up, process.isRunning { return dnsmasq }
            await dnsmasq.stop()
            reason = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        throw DnsmasqFailed(reason: reason)
    }

    struct DnsmasqFailed: Error, CustomStringConvertible {
        let reason: String
        var description: String { "dnsmasq did not start: \(reason)" }
    }

    /// SIGKILL to the shell's process group (Foundation gives each child a group of its own):
    /// the shell and dnsmasq. SIGKILL because they have nothing to save, and a child of the test
    /// process inherits its blocked signals (SIGTERM among them). Then, within 2 s, until the
    /// shell is reaped and the group is empty (dnsmasq gone, its port free for a restart).
    func stop() async {
        let group = process.processIdentifier
        kill(-group, SIGKILL)
        _ = await eventually(timeout: .seconds(2)) { !self.process.isRunning && kill(-group, 0) != 0 }
    }

    static func with(_ body: (DNSResolver) async throws -> Void) async throws {
        let dnsmasq = try await start()
        do {
            try await body(DNSResolver(server: dnsmasq.server, group: MultiThreadedEventLoopGroup.singleton))
        } catch {
            await dnsmasq.stop()
            throw error
        }
        await dnsmasq.stop()
    }
}

@Suite(.enabled(if: DnsmasqProcess.isInstalled, "/usr/sbin/dnsmasq is missing: apt-get install -y dnsmasq-base (CI installs it)"))
struct DNSResolverTests {
    static func replica(_ host: String, _ port: Int) -> ReplicaID { ReplicaID(host: host, port: port) }

    @Test func aHeadlessServiceResolvesToEveryAddressSortedOnce() async throws {
        try await DnsmasqProcess.with { (resolver: DNSResolver) async throws in
            let expected = [Self.replica("10.0.0.1", 8000), Self.replica("10.0.0.2", 8000), Self.replica("fd00::1", 8000)]
            #expect(try await resolver.addresses(of: "replicas.test", port: 8000) == expected)
            #expect(try await resolver.addresses(of: "Replicas.TEST.", port: 8000) == expected)
            #expect(try await resolver.addresses(of: "model-1.replicas.test", port: 80) == [Self.replica("10.0.0.2", 80)])
        }
    }

    @Test func aCNAMEIsFollowedWithinTheAnswer() async throws {
        try await DnsmasqProcess.with { (resolver: DNSResolver) async throws in
            #expect(try await resolver.addresses(of: "alias.replicas.test", port: 80) == [Self.replica("10.0.0.1", 80), Self.replica("fd00::1", 80)])
        }
    }

    @Test func srvRecordsGiveEachTargetWithItsOwnPort() async throws {
        try await DnsmasqProcess.with { (resolver: DNSResolver) async throws in
            // From the glue in the additional section.
            #expect(
                try await resolver.services("_http._tcp.replicas.test") == [
                    Self.replica("10.0.0.1", 8000), Self.replica("10.0.0.2", 8001), Self.replica("fd00::1", 8000),
                ])
            // Two records for one target and port: once.
            #expect(try await resolver.services("_dup._tcp.replicas.test") == [Self.replica("10.0.0.1", 8000), Self.replica("fd00::1", 8000)])
            // No glue: the target is looked up (and is a CNAME).
            #expect(try await resolver.services("_alias._tcp.replicas.test") == [Self.replica("10.0.0.1", 9000), Self.replica("fd00::1", 9000)])
            #expect(try await resolver.services("_none._tcp.replicas.test") == [])
        }
    }

    /// While a dnsmasq runs, the exit of any other child of the test process is still seen (see
    /// `DnsmasqProcess`: spawned directly, dnsmasq would hide it until dnsmasq itself exits).
    @Test func otherChildProcessesAreSeenToExitWhileDnsmasqRuns() async throws {
        let dnsmasq = try await DnsmasqProcess.start()
        let other = Process()
        other.executableURL = URL(fileURLWithPath: "/bin/true")
        try other.run()
        let seen = await eventually(timeout: .seconds(2)) { !other.isRunning }
        await dnsmasq.stop()
        #expect(seen, "the exit of /bin/true went unseen while dnsmasq ran")
    }

    /// The decision (see `DNSResolver`): NXDOMAIN is no replicas, not an error.
    @Test func aNameTheServerDoesNotKnowHasNoReplicas() async throws {
        try await DnsmasqProcess.with { (resolver: DNSResolver) async throws in
            #expect(try await resolver.query("model-9.replicas.test", type: .a).header.responseCode == .nameError)
            #expect(try await resolver.addresses(of: "model-9.replicas.test", port: 80) == [])
            #expect(try await resolver.services("_grpc._tcp.replicas.test") == [])
            // A name outside its zone, with no upstream, is REFUSED: an error.
            await #expect(throws: DNSResolverError.refused(name: "model-0.elsewhere.test", type: .srv, .refused)) {
                try await resolver.services("model-0.elsewhere.test")
            }
        }
    }
}

/// Failures against servers the test plays itself (one UDP socket answering as told, and a second
/// one to answer from the wrong address), and against one that never answers.
@Suite struct DNSResolverFailureTests {
    struct Reply: Sendable {
        var bytes: [UInt8]
        var fromAnotherAddress = false
    }

    static func answer(
        _ query: DNSMessage, id: UInt16? = nil, code: DNSResponseCode = .noError, truncated: Bool = false,
        question: String? = nil, _ answers: [DNSRecord] = []
    ) -> [UInt8] {
        let header = DNSHeader(id: id ?? query.header.id, isResponse: true, isTruncated: truncated, responseCode: code)
        let questions = question.map { [DNSQuestion(name: $0, type: query.questions[0].type)] } ?? query.questions
        return try! DNSMessage(header: header, questions: questions, answers: answers).encoded()
    }

    /// Serves `script` on 127.0.0.1 until the body returns: each query's replies go out in order,
    /// each sent before the next, so they arrive in order.
    static func withServer(_ script: @escaping @Sendable (DNSMessage) -> [Reply], _ body: (SocketAddress) async throws -> Void) async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let other = try await DatagramBootstrap(group: loop).bind(host: "127.0.0.1", port: 0).get()
        let server = try await DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ScriptHandler(script: script, other: other)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer {
            server.close(promise: nil)
            other.close(promise: nil)
        }
        try await body(server.localAddress!)
    }

    final class ScriptHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let script: @Sendable (DNSMessage) -> [Reply]
        let other: any Channel

        init(script: @escaping @Sendable (DNSMessage) -> [Reply], other: any Channel) {
            self.script = script
            self.other = other
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard let query = try? DNSMessage(decoding: Array(envelope.data.readableBytesView)) else { return }
            var sent = context.eventLoop.makeSucceededVoidFuture()
            for reply in script(query) {
                let channel = reply.fromAnotherAddress ? other : context.channel
                sent = sent.flatMap { channel.writeAndFlush(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: ByteBuffer(bytes: reply.bytes))) }
            }
        }
    }

    @Test func answersFromAnotherAddressWithAnotherIdOrQuestionAreIgnored() async throws {
        try await Self.withServer({ query in
            let name = query.questions[0].name
            guard query.questions[0].type == DNSQueryType.a.rawValue else { return [Reply(bytes: Self.answer(query))] }
            return [
                Reply(bytes: Self.answer(query, [DNSRecord(name: name, ttl: 5, data: .a("10.6.6.6"))]), fromAnotherAddress: true),
                Reply(bytes: Self.answer(query, id: query.header.id &+ 1, [DNSRecord(name: name, ttl: 5, data: .a("10.6.6.7"))])),
                Reply(bytes: Self.answer(query, question: "other.test", [DNSRecord(name: name, ttl: 5, data: .a("10.6.6.8"))])),
                Reply(bytes: Self.answer(query, [DNSRecord(name: name, ttl: 5, data: .a("10.0.0.1"))])),
            ]
        }) { (server: SocketAddress) async throws in
            let resolver = DNSResolver(server: server, group: MultiThreadedEventLoopGroup.singleton)
            #expect(try await resolver.addresses(of: "model-0.replicas.test", port: 80) == [ReplicaID(host: "10.0.0.1", port: 80)])
        }
    }

    @Test func serverFailureRefusalTruncationAndGarbageAreErrorsThatSaySo() async throws {
        try await Self.withServer({ query in
            switch query.questions[0].name {
            case "servfail.test": return [Reply(bytes: Self.answer(query, code: .serverFailure))]
            case "notimp.test": return [Reply(bytes: Self.answer(query, code: .notImplemented))]
            case "big.test": return [Reply(bytes: Self.answer(query, truncated: true))]
            default:  // one answer announced, then a pointer forwards
                var bytes = Self.answer(query)
                bytes[7] = 1
                return [Reply(bytes: bytes + [0xC0, 0xFF])]
            }
        }) { (server: SocketAddress) async throws in
            let resolver = DNSResolver(server: server, group: MultiThreadedEventLoopGroup.singleton)
            await #expect(throws: DNSResolverError.serverFailure(name: "servfail.test", type: .srv)) { try await resolver.services("servfail.test") }
            await #expect(throws: DNSResolverError.refused(name: "notimp.test", type: .srv, .notImplemented)) { try await resolver.services("notimp.test") }
            let truncated = await #expect(throws: DNSResolverError.self) { try await resolver.services("big.test") }
            #expect(truncated == .truncated(name: "big.test", type: .srv))
            #expect(truncated.map { "\($0)".contains("truncated (TC bit") } == true)
            // "junk.test" is 11 bytes on the wire: the pointer is at 12 + 11 + 4.
            await #expect(throws: DNSResolverError.malformed(name: "junk.test", type: .srv, .badPointer(at: 27))) {
                try await resolver.services("junk.test")
            }
        }
    }

    /// A socket that reads and never answers: the query ends at its timeout (300 ms), before a
    /// 3 s deadline racing it on the same executor. So a timer that never fires fails the test in
    /// 3 s rather than hanging it, and a full parallel run that delays every resumption (seen: 9 s
    /// on 2 cores) does not fail it, where a wall-clock bound would.
    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let silent = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        let resolver = DNSResolver(server: silent.localAddress!, group: MultiThreadedEventLoopGroup.singleton, timeout: .milliseconds(300))
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await withTaskGroup(of: Result<[ReplicaID], any Error>?.self) { group in
            group.addTask {
                do { return .success(try await resolver.addresses(of: "model-0.replicas.test", port: 80)) } catch { return .failure(error) }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(3))
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
        let elapsed = clock.now - start
        guard case .failure(let error as DNSResolverError) = outcome else {
            Issue.record("after \(elapsed): \(String(describing: outcome)), not a timeout")
            return
        }
        #expect(error == .timeout(name: "model-0.replicas.test", type: .a, after: .milliseconds(300)))
        #expect("\(error)" == "DNS A model-0.replicas.test: no answer within 300 ms")
        #expect(elapsed >= .milliseconds(300), "\(elapsed)")
    }

    @Test func theSystemServerIsTheFirstNameserverLine() throws {
        let conf = "# generated\nsearch default.svc.cluster.local svc.cluster.local\nnameserver  10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n"
        #expect(DNSResolver.nameserver(in: conf) == (try SocketAddress(ipAddress: "10.96.0.10", port: 53)))
        #expect(DNSResolver.nameserver(in: "nameserver\tfd00::a\n") == (try SocketAddress(ipAddress: "fd00::a", port: 53)))
        #expect(DNSResolver.nameserver(in: "nameserver not-an-address\nnameserver 10.0.0.53") == (try SocketAddress(ipAddress: "10.0.0.53", port: 53)))
        #expect(DNSResolver.nameserver(in: "# nameserver 10.0.0.1\nsearch x\n") == nil)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-resolv-\(UInt32.random(in: .min ... .max)).conf")
        try conf.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(DNSResolver.systemServer(resolvConf: file.path) == (try SocketAddress(ipAddress: "10.96.0.10", port: 53)))
        #expect(DNSResolver.systemServer(resolvConf: file.path + ".missing") == nil)
    }
}
