import Testing
@testable import SluiceConfig

@Suite struct TracingConfigurationTests {
    static func config(_ tracing: String) -> String {
        ConfigValidationTests.valid + "\ntracing: \(tracing)\n"
    }

    @Test func tracingIsOffUnlessAnEndpointIsGiven() throws {
        #expect(try GatewayConfiguration.decode(yaml: ConfigValidationTests.valid).tracing == nil)
        let tracing = try #require(try GatewayConfiguration.decode(yaml: Self.config(
            "{ endpoint: \"http://127.0.0.1:4318/v1/traces\", sample: 0.25, service_name: edge, export_delay: 200ms }")).tracing)
        #expect(tracing.endpoint == "http://127.0.0.1:4318/v1/traces")
        #expect(tracing.sample == 0.25)
        #expect(tracing.serviceName == "edge")
        #expect(tracing.exportDelay == .milliseconds(200))
        let defaults = try #require(try GatewayConfiguration.decode(yaml: Self.config("{ endpoint: \"https://otel.example:4318/v1/traces\" }")).tracing)
        #expect(defaults.sample == 1 && defaults.serviceName == "sluice")
    }

    @Test func badTracingKeysAreNamed() {
        for (yaml, path) in [
            ("{ sample: 0.5 }", "tracing"),
            ("{ endpoint: \"127.0.0.1:4318\" }", "tracing.endpoint"),
            ("{ endpoint: \"http://x:4318/v1/traces\", protocol: grpc }", "tracing.protocol"),
            ("{ endpoint: \"http://x:4318/v1/traces\", service_name: \"\" }", "tracing.service_name"),
            ("{ endpoint: \"http://x:4318/v1/traces\", sample: 1.5 }", "tracing.sample"),
            ("{ endpoint: \"http://x:4318/v1/traces\", spans: all }", "tracing.spans"),
        ] {
            do {
                _ = try GatewayConfiguration.decode(yaml: Self.config(yaml))
                Issue.record("accepted \(yaml)")
            } catch {
                #expect(error.issues.contains { $0.path == path }, "\(yaml): \(error.issues)")
            }
        }
    }
}
