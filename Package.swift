// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// The data path is single-threaded per connection and its state is only touched on its event
/// loop; dynamic exclusivity checks were ~2% of the gateway's CPU samples under load in release
/// builds (`perf record`: swift::runtime::AccessSet::insert, swift_beginAccess/endAccess).
/// Debug builds, and so the tests, keep them.
let dataPath: [SwiftSetting] = strict + [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .executable(name: "sluice-replica", targets: ["sluice-replica"]),
        .executable(name: "sluice-load", targets: ["sluice-load"]),
        .executable(name: "sluice-http1-fuzz", targets: ["SluiceHTTP1Fuzz"]),
        .library(name: "SluiceCore", targets: ["SluiceCore"]),
        .library(name: "SluiceGateway", targets: ["SluiceGateway"]),
        .library(name: "SluiceHTTP1", targets: ["SluiceHTTP1"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    ],
    targets: [
        // Pure policy: no NIO, no clock, no RNG, no logger. Everything comes in as an argument.
        .target(name: "SluiceCore", swiftSettings: strict),
        // The simulated replica's engine and the load generator's planning: as pure as SluiceCore
        // (their tests need exact times and seeded runs), but kept out of the gateway's policy.
        .target(name: "SluiceSimulation", dependencies: ["SluiceCore"], swiftSettings: strict),
        .target(
            name: "SluiceConfig",
            dependencies: ["SluiceCore", "SluiceSimulation", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // HTTP/1.1 as bytes: the parser, heads, the rewriter. NIOCore alone, so it can be property
        // tested and fuzzed by itself; on the data path, so built like the gateway.
        .target(
            name: "SluiceHTTP1",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: dataPath
        ),
        .target(
            name: "SluiceGateway",
            dependencies: [
                "SluiceCore", "SluiceConfig", "SluiceHTTP1",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: dataPath
        ),
        .target(
            name: "SluiceReplica",
            dependencies: [
                "SluiceCore", "SluiceSimulation", "SluiceConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SluiceLoad",
            dependencies: [
                "SluiceCore", "SluiceSimulation", "SluiceConfig", "SluiceReplica",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SluiceTesting",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceGateway", "SluiceConfig", "SluiceReplica", "SluiceLoad", "SluiceSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sluice-load",
            dependencies: [
                "SluiceLoad", "SluiceConfig", "SluiceReplica", "SluiceSimulation",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sluice-replica",
            dependencies: [
                "SluiceReplica",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The HTTP/1.1 fuzz target: libFuzzer drives it when built as scripts/fuzz-http1.sh does
        // (-sanitize=fuzzer); a plain build replays the inputs named on its command line.
        .systemLibrary(name: "CLibFuzzer"),
        .executableTarget(
            name: "SluiceHTTP1Fuzz",
            dependencies: ["SluiceHTTP1", "CLibFuzzer", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(name: "SluiceCoreTests", dependencies: ["SluiceCore"], swiftSettings: strict),
        .testTarget(
            name: "SluiceSimulationTests", dependencies: ["SluiceSimulation", "SluiceCore"], swiftSettings: strict
        ),
        .testTarget(name: "SluiceConfigTests", dependencies: ["SluiceConfig", "SluiceSimulation"], swiftSettings: strict),
        .testTarget(
            name: "SluiceHTTP1Tests",
            dependencies: ["SluiceHTTP1", "SluiceCore", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceGatewayTests",
            dependencies: [
                "SluiceGateway", "SluiceHTTP1", "SluiceReplica", "SluiceTesting", "SluiceConfig", "SluiceLoad", "SluiceSimulation",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceReplicaTests",
            dependencies: ["SluiceReplica", "SluiceSimulation", "SluiceTesting"],
            swiftSettings: strict
        ),
    ]
)
