import SluiceCore

/// Everything `sluice serve` needs, decoded and validated from one YAML file. Defaults live here,
/// next to the fields, so docs/configuration.md and the code cannot drift apart silently.
public struct GatewayConfiguration: Sendable, Equatable {
    /// Data-plane listener.
    public var listen: ReplicaID
    /// Event-loop threads; nil means one per core.
    public var workers: Int?
    /// Pin event-loop thread i to the i-th CPU the process may run on. Off by default: it helps
    /// only where the CPUs are the gateway's own (a dedicated host, or Kubernetes' static CPU
    /// manager policy); two pinned processes sharing CPUs would crowd the same ones.
    public var pinWorkers = false
    public var logLevel: String = "info"
    public var admin: AdminConfiguration
    public var pools: [PoolConfiguration]
    public var limits = LimitsConfiguration()
    /// Where scale decisions are sent besides `/admin/scale` and `/metrics`.
    public var publish = PublishConfiguration()
    /// OpenTelemetry traces; nil (the default) traces nothing.
    public var tracing: TracingConfiguration?
    /// How long in-flight requests and streams may run on after SIGTERM before they are cut.
    public var shutdownGrace: Duration = .seconds(30)
    /// TLS on `listen`; nil: plaintext HTTP/1.1 and h2c.
    public var tls: ListenerTLSConfiguration?
    public var http2 = HTTP2Configuration()
    /// Model names served by weighted pools (versions, canaries) and their aliases.
    public var models: [ModelConfiguration] = []

    public init(listen: ReplicaID, admin: AdminConfiguration, pools: [PoolConfiguration]) {
        self.listen = listen
        self.admin = admin
        self.pools = pools
    }

    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
}

public struct AdminConfiguration: Sendable, Equatable {
    public var listen: ReplicaID
    /// Environment variable holding the bearer token for `/admin/*`; the token never sits in YAML.
    public var tokenEnv: String?
    /// Slash commands from Slack or Mattermost on `POST /chat/command`.
    public var chatops: ChatOpsConfiguration?

    public init(listen: ReplicaID, tokenEnv: String? = nil) {
        self.listen = listen
        self.tokenEnv = tokenEnv
    }
}

public struct LimitsConfiguration: Sendable, Equatable {
    /// Request line plus headers; over it the client gets 431.
    public var maxHeaderBytes = 16_384
    /// Request body; over it the client gets 413.
    public var maxBodyBytes = 8_388_608
    /// How much of a body the gateway will hold to read its `model` field when routing needs it.
    public var maxInspectBytes = 1_048_576
    /// Longest silence from a client in the middle of a request (its body); past it the client
    /// gets 408 and the upstream request is cancelled, so a stalled upload cannot hold a replica.
    public var clientTimeout: Duration = .seconds(60)
    /// The slowest body accepted (Apache's `mod_reqtimeout` rule): a body must arrive within
    /// `bodyTimeout` of its head plus one second per `minBodyRate` bytes; past it, 408. Time
    /// the gateway itself holds the body (a queue, a replica that cannot take more) is not
    /// counted. `minBodyRate` 0 turns it off.
    public var bodyTimeout: Duration = .seconds(60)
    public var minBodyRate = 500
    /// Client connections open at once; at the cap the listener stops accepting until one
    /// closes. Nil: half of the file descriptors the process may open (`ulimit -n`).
    public var maxConnections: Int?
    /// How long a client connection may stay open with no request in progress (between
    /// requests, or before a request head is complete); nginx's `keepalive_timeout` default.
    public var keepaliveTimeout: Duration = .seconds(75)
    /// Named tenants with their limits; their API keys come from the environment or a file.
    public var tenants: [TenantConfiguration] = []
    /// Limits for requests whose key names no tenant (or that carry none): the `default` tenant.
    /// Nil means unlimited.
    public var defaultTenant: TenantLimits?
    /// A header that names the API key instead of `Authorization: Bearer` (e.g. `x-api-key`).
    public var tenantHeader: String?
    /// Evaluate and report every limit, but reject nothing.
    public var shadow = false
    /// Where the rate counters live: this process, or a Redis every gateway instance shares.
    public var backend: LimitsBackend = .local
    /// What happens to a decision when the shared backend fails or is slower than
    /// `backendTimeout`.
    public var onBackendFailure: BackendFailureMode = .local
    /// How long a shared decision may take before it counts as a backend failure.
    public var backendTimeout: Duration = .milliseconds(5)
    /// How many gateway instances share the limits: with `on_backend_failure: local` each falls
    /// back to `limit / instances`.
    public var instances = 1
    /// The completion tokens charged at admission for a completion request that names no
    /// `max_tokens` (settled with the real count when the response ends).
    public var defaultMaxTokens = 1_024

    /// Whether any admission limit is configured (otherwise the request path skips admission).
    public var admissionEnabled: Bool { !tenants.isEmpty || defaultTenant != nil }

    public init() {}
}

/// Per-tenant limits; nil fields are unlimited.
public struct TenantLimits: Sendable, Equatable {
    public var requestsPerMinute: Int?
    /// Requests that may pass at once from a full limit; default: a minute's worth.
    public var burst: Int?
    public var maxConcurrent: Int?
    /// Higher is served first when requests wait in a pool's queue.
    public var priority = 0
    /// Model tokens (prompt + completion) per minute: charged an estimate at admission, settled
    /// with the replica's `usage` when the response ends.
    public var tokensPerMinute: Int?
    /// Tokens that may be spent at once from a full limit; default: a minute's worth.
    public var tokenBurst: Int?
    /// Limits that apply, on top of the tenant's, to requests naming one model.
    public var models: [ModelLimits] = []

    /// Whether admission must read the body (token costs, or the model a limit names).
    public var needsBody: Bool { tokensPerMinute != nil || !models.isEmpty }

    public init() {}
}

/// A tenant's limits for one model (the body's `model` field, exactly).
public struct ModelLimits: Sendable, Equatable {
    public var model: String
    public var requestsPerMinute: Int?
    public var burst: Int?
    public var tokensPerMinute: Int?
    public var tokenBurst: Int?

    public init(model: String) {
        self.model = model
    }
}

public struct TenantConfiguration: Sendable, Equatable {
    public var name: String
    /// An environment variable holding the tenant's API keys, comma-separated.
    public var keysEnv: String?
    /// A file holding the tenant's API keys, one per line (blank lines and `#` comments skipped).
    public var keysFile: String?
    public var limits: TenantLimits

    public init(name: String, keysEnv: String? = nil, keysFile: String? = nil, limits: TenantLimits = TenantLimits()) {
        self.name = name
        self.keysEnv = keysEnv
        self.keysFile = keysFile
        self.limits = limits
    }
}

public enum LimitsBackend: Sendable, Equatable {
    case local
    case redis(ReplicaID)
}

public enum CachePlacement: String, Sendable, Equatable, CaseIterable {
    case balanced, ring
}

public enum RoutingPolicyName: String, Sendable, Equatable, CaseIterable {
    case roundRobin = "round-robin"
    case random
    case leastQueue = "least-queue"
    case consistentHash = "consistent-hash"
    case cacheAware = "cache-aware"
}

/// Where a hashing policy finds a request's key; the first present wins.
public enum RoutingKeySource: Sendable, Equatable {
    /// A request header (lowercased name), e.g. `x-session-id`.
    case header(String)
    /// The API key (`Authorization: Bearer`).
    case tenant
    /// The body's `user` field.
    case bodyUser
    /// The first `prefix_tokens` tokens of the prompt (chat messages joined in order).
    case prefix

    public var needsBody: Bool {
        switch self {
        case .bodyUser, .prefix: true
        case .header, .tenant: false
        }
    }

    /// As written in a config file (`header:x-session-id`, `tenant`, `body:user`, `prefix`).
    public var configText: String {
        switch self {
        case .header(let name): "header:\(name)"
        case .tenant: "tenant"
        case .bodyUser: "body:user"
        case .prefix: "prefix"
        }
    }
}

/// `pools[].routing`.
public struct RoutingConfiguration: Sendable, Equatable {
    public var policy: RoutingPolicyName = .roundRobin
    public var key: [RoutingKeySource] = []
    public var prefixTokens = 256
    public var loadFactor = 1.25
    public var maxQueue = 8
    /// Cache-aware: running slots per replica (nil: learnt from `vllm:num_requests_running`).
    public var slots: Int?
    /// Cache-aware: uncached prompt bytes in flight past which a replica is saturated.
    public var maxPendingPrefill = 65_536
    /// Cache-aware: how long a replica stays saturated before its conversations move off it.
    public var moveAfter: Duration = .seconds(2)
    /// Cache-aware: the share of a prompt its longest match must cover to follow it.
    public var matchThreshold = 0.5
    /// Cache-aware: prompt blocks remembered across the pool (`PromptIndex`).
    public var promptIndexBlocks = 65_536
    /// Cache-aware: where new conversations go: `balanced` (the least work) or `ring` (the
    /// first replica in their hash-ring order that is not saturated: several instances that
    /// share no placements then agree).
    public var placement: CachePlacement = .balanced
    /// Cache-aware: a Redis through which gateway instances tell each other where they place
    /// conversations (pub/sub), so every instance sends a conversation to the same replica.
    public var shared: ReplicaID?
    /// Where and how often the replicas' Prometheus metrics are read (least-queue, cache-aware).
    public var scrapePath = "/metrics"
    public var scrapeInterval: Duration = .seconds(1)

    public init() {}
}

public struct PoolConfiguration: Sendable, Equatable {
    public var name: String
    public var paths: [PathPattern]
    /// Nil means any model; see `RouteTable`.
    public var models: [String]?
    public var replicas: [ReplicaID]
    public var routing = RoutingConfiguration()
    public var policy: RoutingPolicyName {
        get { routing.policy }
        set { routing.policy = newValue }
    }
    public var timeouts = TimeoutsConfiguration()
    public var upstream = UpstreamConfiguration()
    /// Passive health: when failing replicas are ejected, and for how long.
    public var ejection = EjectionPolicy()
    /// Where the replicas come from besides `replicas` (which are then only the first list);
    /// nil: `replicas` alone.
    public var discovery: DiscoveryConfiguration?
    /// When a request a replica failed goes again (`RetryPolicy`).
    public var retry = RetryPolicy()
    /// Active health checks; nil: none (replicas are in rotation until they fail requests).
    public var healthCheck: HealthCheckPolicy?
    /// How often failure rates are judged and ejection lengths cool down.
    public var outlierInterval: Duration = .seconds(10)
    /// Requests one replica may have in progress through this gateway; past it on every
    /// replica, requests wait in `queue`. Nil: no cap, no queue (the replica queues itself).
    public var maxConcurrentPerReplica: Int?
    public var queue = QueueConfiguration()
    /// The p95 objective and the scale advisor's rules; nil: no scale decisions for this pool.
    public var scaling: ScalingConfiguration?
    /// Gateway batching of `/v1/embeddings` and V2 `infer` requests; nil: none.
    public var batching: BatchingConfiguration?
    /// The replica is a hosted provider's API (`provider:`).
    public var provider: ProviderConfiguration?
    /// Where allowed tenants' requests go when this pool is saturated (`overflow:`).
    public var overflow: OverflowConfiguration?

    public init(name: String, paths: [PathPattern], models: [String]? = nil, replicas: [ReplicaID]) {
        self.name = name
        self.paths = paths
        self.models = models
        self.replicas = replicas
    }
}

/// `pools[].batching`: see `BatchController`.
public struct BatchingConfiguration: Sendable, Equatable {
    public var maxBatch: Int
    public var maxWait: Duration
    public var targetLatency: Duration
    /// A request whose JSON holds more values than this (inputs, numbers, at any depth) goes
    /// alone, unparsed: merging needs a tree of it, whose memory grows with its values.
    public var maxValues: Int

    public init(maxBatch: Int = 32, maxWait: Duration = .milliseconds(5), targetLatency: Duration = .milliseconds(50), maxValues: Int = 16_384) {
        self.maxBatch = maxBatch
        self.maxWait = maxWait
        self.targetLatency = targetLatency
        self.maxValues = maxValues
    }

    public var policy: BatchController.Policy {
        BatchController.Policy(
            maxBatch: maxBatch, maxWait: UInt64(maxWait.nanoseconds), targetLatency: UInt64(targetLatency.nanoseconds))
    }
}

/// What a pool's latency objective is measured on.
public enum ScalingSignal: String, Sendable, Equatable, CaseIterable {
    /// Time to the first token of a streamed answer (end-to-end latency for others).
    case ttft
    /// From the request head to the answer's last byte.
    case latency
    /// Time waited in the gateway's queue for a replica slot (0 for requests that did not wait).
    case queueWait = "queue_wait"
}

/// `pools[].scaling`: the p95 objective and the scale advisor's rules (see `ScaleAdvisor`).
public struct ScalingConfiguration: Sendable, Equatable {
    public var signal = ScalingSignal.ttft
    public var targetP95: Duration
    public var minReplicas = 1
    public var maxReplicas = 16
    public var stableWindow: Duration = .seconds(60)
    public var panicWindow: Duration = .seconds(6)
    public var panicThreshold = 2.0
    public var tolerance = 0.1
    public var scaleInRatio = 0.6
    public var scaleDownDelay: Duration = .seconds(300)
    public var maxStepUp = 4
    /// How often the advisor decides; also the latency windows' sub-window.
    public var tick: Duration = .seconds(2)
    /// A Redis every gateway instance of this pool publishes its sub-windows to: the p95 is
    /// then read from the merge of all instances, and every instance publishes the same decision.
    public var shared: ReplicaID?

    public init(targetP95: Duration) {
        self.targetP95 = targetP95
    }

    /// The advisor's policy in nanoseconds.
    public var policy: ScaleAdvisor.Policy {
        ScaleAdvisor.Policy(
            target: UInt64(targetP95.nanoseconds), minReplicas: minReplicas, maxReplicas: maxReplicas,
            stableWindow: UInt64(stableWindow.nanoseconds), panicWindow: UInt64(panicWindow.nanoseconds),
            panicThreshold: panicThreshold, tolerance: tolerance, scaleInRatio: scaleInRatio,
            scaleDownDelay: UInt64(scaleDownDelay.nanoseconds), maxStepUp: maxStepUp)
    }
}

/// The pool's wait queue, used only with `max_concurrent_per_replica`.
public struct QueueConfiguration: Sendable, Equatable {
    /// Requests that may wait; one more is answered 503 at once.
    public var max = 256
    /// How long a request may wait for a slot; past it, 503.
    public var timeout: Duration = .seconds(5)
    /// How tenants of one priority share the pool while requests wait (`FairQueue`).
    public var fairness: QueueFairness = .requests
    /// Slots kept free, while two or more tenants are active, for all but the tenant asking for
    /// the most tokens lately (decayed by half each second): that one does not take the last
    /// `headroom` free slots, so a light tenant's request finds one instead of waiting for a long answer.
    public var headroom = 0

    public init() {}
}

public struct TimeoutsConfiguration: Sendable, Equatable {
    /// TCP connect to a replica; past it the replica counts a failure and the client gets 502.
    public var connect: Duration = .seconds(2)
    /// From the request's last byte sent to the response head; past it the client gets 504.
    public var responseHeader: Duration = .seconds(60)
    /// Longest silence from the replica mid-response (between body parts); past it the stream is cut.
    public var idle: Duration = .seconds(300)

    public init() {}
}

/// A pool's replicas found at run time: a headless Service's DNS records, or a file something
/// else keeps (a sidecar, a ConfigMap), re-read every `interval`. New replicas join after their
/// first passing health check when the pool runs checks; removed ones take no new requests and
/// finish what they have.
public struct DiscoveryConfiguration: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        /// A and AAAA records of `name`, each at `port`.
        case dns(name: String, port: Int)
        /// SRV records of `name`: targets and their ports.
        case srv(name: String)
        /// One `host:port` a line (blank lines and `#` comments skipped).
        case file(path: String)
    }

    public var source: Source
    public var interval: Duration = .seconds(5)
    /// The name server asked (host:port); nil: the first in /etc/resolv.conf.
    public var resolver: ReplicaID?

    public init(source: Source) {
        self.source = source
    }
}

