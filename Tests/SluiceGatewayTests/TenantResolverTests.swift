import NIOCore
import SluiceConfig
import SluiceCore
import SluiceHTTP1
import Testing
@testable import SluiceGateway

/// Who is asking, from the head alone: a bearer key (scheme in any case, spaces after it), a
/// configured header instead, and `default` for a missing, malformed or unknown key.
struct TenantResolverTests {
    static let hasher = SipHash(k0: 1, k1: 2)

    static func head(_ fields: String) -> HTTP1Head {
        var parser = HTTP1Parser(role: .request, maxHeadBytes: 16 * 1024)
        var buffer = ByteBuffer(string: "GET /v1/models HTTP/1.1\r\nhost: x\r\n\(fields)\r\n")
        guard case .head(let head) = try? parser.next(&buffer) else { fatalError("not a head") }
        return head
    }

    static func resolver(header: String? = nil) throws -> TenantResolver {
        var limits = LimitsConfiguration()
        limits.tenants = [
            TenantConfiguration(name: "a", keysEnv: "KEYS_A"),
            TenantConfiguration(name: "b", keysEnv: "KEYS_B"),
        ]
        limits.tenantHeader = header
        return try TenantResolver(limits, environment: ["KEYS_A": "sk-a1, sk-a2", "KEYS_B": "sk-b"], hasher: hasher, warn: { _ in })
    }

    @Test func aBearerKeyNamesItsTenantWhateverTheSchemesCase() throws {
        let resolver = try Self.resolver()
        #expect(resolver.tenant(for: Self.head("authorization: Bearer sk-a2\r\n")) == 0)
        #expect(resolver.tenant(for: Self.head("Authorization: bEaReR   sk-b\r\n")) == 1)
    }

    @Test func aMissingMalformedOrUnknownKeyIsTheDefaultTenant() throws {
        let resolver = try Self.resolver()
        #expect(resolver.defaultIndex == 2)
        #expect(resolver.tenant(for: Self.head("")) == 2)
        #expect(resolver.tenant(for: Self.head("authorization: Basic c2stYTE=\r\n")) == 2)
        #expect(resolver.tenant(for: Self.head("authorization: Bearer sk-a\r\n")) == 2)
        #expect(resolver.tenant(for: Self.head("authorization: Bearer \r\n")) == 2)
    }

    @Test func aConfiguredHeaderCarriesTheKeyAsItIs() throws {
        let resolver = try Self.resolver(header: "x-api-key")
        #expect(resolver.tenant(for: Self.head("X-API-Key: sk-b\r\n")) == 1)
        // The bearer form is not read when a header is configured.
        #expect(resolver.tenant(for: Self.head("authorization: Bearer sk-b\r\n")) == 2)
    }

    @Test func twoTenantsSharingAKeyStopTheStartNamingBoth() throws {
        var limits = LimitsConfiguration()
        limits.tenants = [TenantConfiguration(name: "a", keysEnv: "K"), TenantConfiguration(name: "b", keysEnv: "K")]
        #expect {
            _ = try TenantResolver(limits, environment: ["K": "sk-same"], hasher: Self.hasher, warn: { _ in })
        } throws: { error in
            "\(error)" == "tenants a and b share an API key"
        }
    }

    /// `sluice check` asks the same question `serve` does at start.
    @Test func whatServeWouldRefuseAtStartIsFoundBeforeIt() throws {
        var configuration = GatewayConfiguration(
            listen: ReplicaID(host: "127.0.0.1", port: 0), admin: AdminConfiguration(listen: ReplicaID(host: "127.0.0.1", port: 0)), pools: [])
        #expect(Gateway.startProblems(configuration, environment: [:]).isEmpty)
        configuration.limits.tenants = [TenantConfiguration(name: "a", keysFile: "/nonexistent/sluice-keys")]
        let problems = Gateway.startProblems(configuration, environment: [:])
        #expect(problems.count == 1)
        #expect(problems.first?.contains("/nonexistent/sluice-keys") == true)
        configuration.limits.tenants = [TenantConfiguration(name: "a", keysEnv: "KEYS_A")]
        #expect(Gateway.startProblems(configuration, environment: ["KEYS_A": "sk-a"]).isEmpty)
    }
}
