import Foundation
import NIOCore
import NIOSSL
import SluiceConfig
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// HTTP/2 on the data listener: h2c beside HTTP/1.1 on the plain port, h2 and HTTP/1.1 over
/// TLS by ALPN, each stream through the same data path (routing, limits, streaming).
@Suite(.serialized) struct HTTP2ListenerTests {
    static let json = [("content-type", "application/json")]

    @Test func h2cAndHTTP1ShareThePlainPortAndStreamsRunAtOnce() async throws {
        try await GatewayHarness.run(replicas: [ReplicaConfiguration(id: "r1"), ReplicaConfiguration(id: "r2")]) { h in
            let connection = try await TestHTTP2Connection.connect(to: h.data, group: h.group)
            defer { Task { await connection.close() } }
            let one = try await connection.request("POST", "/v1/chat/completions", headers: Self.json, body: ByteBuffer(string: chatBody()))
            #expect(one.status == 200)
            #expect(one.bodyString.contains(#""object":"chat.completion""#))
            #expect(one.header("x-request-id") != nil)
            // 32 streams at once on the one connection, spread over both replicas.
            let replicas = try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        let response = try await connection.request("POST", "/v1/chat/completions", headers: Self.json, body: ByteBuffer(string: chatBody()))
                        return response.status == 200 ? response.header("x-replica-id") : nil
                    }
                }
                return try await group.reduce(into: [String?]()) { $0.append($1) }
            }
            #expect(replicas.count == 32 && !replicas.contains(nil))
            #expect(Set(replicas.compactMap { $0 }) == ["r1", "r2"])
            #expect(try await h.request(.GET, "/v1/models").status == 200)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_downstream_requests_total{protocol="h2c"} 33"#))
            #expect(metrics.contains(#"sluice_downstream_requests_total{protocol="http1"} 1"#))
        }
    }

    @Test func aStreamedCompletionAndABodyWithoutLengthWorkOverHTTP2() async throws {
        try await GatewayHarness.run { h in
            let connection = try await TestHTTP2Connection.connect(to: h.data, group: h.group)
            defer { Task { await connection.close() } }
            let stream = try await connection.request("POST", "/v1/chat/completions", headers: Self.json, body: ByteBuffer(string: chatBody(stream: true, maxTokens: 5)))
            #expect(stream.status == 200)
            #expect(stream.header("content-type")?.hasPrefix("text/event-stream") == true)
            #expect(stream.bodyString.components(separatedBy: "data: {").count == 6)
            #expect(stream.bodyString.hasSuffix("data: [DONE]\n\n"))
            // No content-length: the body goes on chunked, with the client's trailers.
            let chunked = try await connection.request(
                "POST", "/v1/chat/completions", headers: Self.json, body: ByteBuffer(string: chatBody()), trailers: [("x-checksum", "1")])
            #expect(chunked.status == 200)
            #expect(chunked.bodyString.contains(#""object":"chat.completion""#))
            let missing = try await connection.request("GET", "/nowhere")
            #expect(missing.status == 404)
            #expect(missing.bodyString.contains(#""code":"no_route""#))
        }
    }

    @Test func aTenantOverItsRateGets429OnItsStreamAndTheConnectionGoesOn() async throws {
        let keys = try AdmissionTests.keysFile(["sk-a"])
        defer { try? FileManager.default.removeItem(atPath: keys) }
        try await GatewayHarness.run(configure: { config, _ in
            config.limits.tenants = [AdmissionTests.tenant("team-a", keysFile: keys, perMinute: 6, burst: 2)]
        }) { h in
            let connection = try await TestHTTP2Connection.connect(to: h.data, group: h.group)
            defer { Task { await connection.close() } }
            let headers = Self.json + [("authorization", "Bearer sk-a")]
            var statuses: [Int] = []
            var last: TestHTTP2Connection.Response?
            for _ in 0..<3 {
                let response = try await connection.request("POST", "/v1/chat/completions", headers: headers, body: ByteBuffer(string: chatBody()))
                statuses.append(response.status)
                last = response
            }
            #expect(statuses == [200, 200, 429])
            #expect(last?.header("x-ratelimit-remaining-requests") == "0")
            #expect((1...10).contains(Int(last?.header("retry-after") ?? "") ?? 0))
            #expect(last?.bodyString.contains(#""code":"rate_limit_exceeded""#) == true)
            // The refusal ended one stream, not the connection.
            #expect(try await connection.request("GET", "/v1/models").status == 200)
        }
    }

    @Test func tlsOffersH2AndHTTP1ByALPNAndServesAReloadedCertificate() async throws {
        let first = try TestCertificates.make()
        let second = try TestCertificates.make()
        defer { first.remove(); second.remove() }
        // The files the gateway serves: first's, then second's copied over them.
        let served = try TestCertificates.make()
        defer { served.remove() }
        try await GatewayHarness.run(configure: { config, _ in
            var tls = ListenerTLSConfiguration(certFile: served.certificateFile, keyFile: served.keyFile)
            tls.reloadInterval = .milliseconds(100)
            config.tls = tls
        }) { h in
            let h2 = try await TestHTTP2Connection.connect(to: h.data, group: h.group, tls: served.clientContext())
            let response = try await h2.request("GET", "/v1/models")
            #expect(response.status == 200)
            await h2.close()
            // ALPN http/1.1 (and no ALPN) is HTTP/1.1 over TLS: refused as h2 by the test client.
            await #expect(throws: (any Error).self) {
                try await TestHTTP2Connection.connect(to: h.data, group: h.group, tls: served.clientContext(alpn: ["http/1.1"]))
            }
            // A client trusting only the second CA fails until the files change.
            await #expect(throws: (any Error).self) {
                try await TestHTTP2Connection.connect(to: h.data, group: h.group, tls: second.clientContext())
            }
            for (from, to) in [(second.certificateFile, served.certificateFile), (second.keyFile, served.keyFile)] {
                try FileManager.default.removeItem(atPath: to)
                try FileManager.default.copyItem(atPath: from, toPath: to)
            }
            let switched = try await eventually(timeout: .seconds(5)) {
                guard let connection = try? await TestHTTP2Connection.connect(to: h.data, group: h.group, tls: second.clientContext()) else { return false }
                defer { Task { await connection.close() } }
                return (try? await connection.request("GET", "/v1/models").status) == 200
            }
            #expect(switched)
            // A broken file is not served: the last good certificate stays.
            try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: served.certificateFile))
            try await Task.sleep(for: .milliseconds(400))
            let after = try await TestHTTP2Connection.connect(to: h.data, group: h.group, tls: second.clientContext())
            #expect(try await after.request("GET", "/v1/models").status == 200)
            await after.close()
            let metrics = try await h.adminRequest("/metrics").text
            let h2Requests = metrics.split(separator: "\n").first { $0.hasPrefix(#"sluice_downstream_requests_total{protocol="h2"}"#) }
            #expect((h2Requests?.split(separator: " ").last).flatMap { Int($0) } ?? 0 >= 2)
        }
    }

    @Test func withAClientCAOnlyClientsWithItsCertificatesAreServed() async throws {
        let certificates = try TestCertificates.make()
        let rogue = try TestCertificates.make()
        defer { certificates.remove(); rogue.remove() }
        try certificates.makeClient()
        try rogue.makeClient()
        try await GatewayHarness.run(configure: { config, _ in
            config.tls = ListenerTLSConfiguration(certFile: certificates.certificateFile, keyFile: certificates.keyFile, clientCAFile: certificates.caFile)
        }) { h in
            let trusted = try await TestHTTP2Connection.connect(to: h.data, group: h.group, tls: certificates.clientContext(withCertificate: true))
            #expect(try await trusted.request("GET", "/v1/models").status == 200)
            await trusted.close()
            // No certificate, or one another CA signed: no request gets through.
            var rogueTLS = TLSConfiguration.makeClientConfiguration()
            rogueTLS.trustRoots = .file(certificates.caFile)
            rogueTLS.applicationProtocols = ["h2"]
            rogueTLS.certificateChain = try NIOSSLCertificate.fromPEMFile(rogue.clientCertificateFile).map { .certificate($0) }
            rogueTLS.privateKey = .privateKey(try NIOSSLPrivateKey(file: rogue.clientKeyFile, format: .pem))
            for context in [try certificates.clientContext(), try NIOSSLContext(configuration: rogueTLS)] {
                await #expect(throws: (any Error).self) {
                    let connection = try await TestHTTP2Connection.connect(to: h.data, group: h.group, tls: context)
                    defer { Task { await connection.close() } }
                    _ = try await connection.request("GET", "/v1/models")
                }
            }
        }
    }

    @Test func aStartWithCertificatesThatDoNotLoadFailsAndSaysWhy() async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        var tls = ListenerTLSConfiguration(certFile: certificates.certificateFile, keyFile: certificates.caFile)
        #expect(throws: ListenerCertificates.LoadError.self) { try ListenerCertificates(tls) }
        // A key that is not the certificate's.
        let other = try TestCertificates.make()
        defer { other.remove() }
        tls.keyFile = other.keyFile
        #expect(throws: ListenerCertificates.LoadError.self) { try ListenerCertificates(tls) }
        tls.keyFile = certificates.keyFile
        tls.certFile = "/nonexistent/cert.pem"
        do {
            _ = try ListenerCertificates(tls)
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.description.contains("cannot read /nonexistent/cert.pem"))
        }
    }
}
