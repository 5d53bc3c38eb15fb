import AsyncHTTPClient
import NIOCore
import ServiceLifecycle
import Synchronization

/// The one AsyncHTTPClient that the gateway's work off the data path shares: metric scrapes,
/// scale webhooks and merged batches. It runs on the gateway's own event loops.
///
/// The client is made on first use, so a gateway that never sends such a request (or never
/// starts) holds none and has nothing to shut down. As a `Service` it comes first in the
/// gateway's group, so it stops last, after every service that uses it has stopped; a request
/// made after that fails like any unreachable peer.
final class BackgroundHTTPClient: Service, Sendable {
    private enum State {
        case unused
        case running(HTTPClient)
        case shutDown
    }

    private let group: any EventLoopGroup
    private let state = Mutex<State>(.unused)

    init(group: any EventLoopGroup) {
        self.group = group
    }

    /// Every caller has its own answer to a peer that cannot be reached (the webhook retries,
    /// a batch's members go alone, a scrape waits for the next round), so a refused connection
    /// fails the request at once rather than being retried by the client until the deadline.
    /// Idle connections close after 3 s, under uvicorn's 5 s keep-alive, so the gateway and not
    /// the replica lets them go; a replica may be sent many batches at once (one per join key
    /// and event loop), and they must not queue behind one another in the client.
    static var configuration: HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(2))
        configuration.connectionPool = .init(idleTimeout: .seconds(3), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.redirectConfiguration = .disallow
        return configuration
    }

    /// The client; after `shutdown()`, an error.
    func client() throws -> HTTPClient {
        try state.withLock { state in
            switch state {
            case .running(let client):
                return client
            case .unused:
                let client = HTTPClient(eventLoopGroup: group, configuration: Self.configuration)
                state = .running(client)
                return client
            case .shutDown:
                throw HTTPClientError.alreadyShutdown
            }
        }
    }

    /// Closes the client's connections; requests still in flight fail.
    func shutdown() async throws {
        let client = state.withLock { state -> HTTPClient? in
            defer { state = .shutDown }
            if case .running(let client) = state { return client }
            return nil
        }
        try await client?.shutdown()
    }

    /// Holds the client until the group shuts down (or is cancelled), then shuts it down.
    func run() async throws {
        try? await gracefulShutdown()
        try await shutdown()
    }
}

extension HTTPClient {
    /// Sends `request` and reads the whole answer (at most `maxBody` bytes). Unlike the async
    /// `execute`, whose deadline ends when the head arrives, `deadline` here covers connecting,
    /// sending and reading the body; cancelling the calling task cancels the request.
    func wholeResponse(_ request: Request, deadline: NIODeadline, maxBody: Int = 16 << 20) async throws -> Response {
        let task = execute(request: request, delegate: ResponseAccumulator(request: request, maxBodySize: maxBody), deadline: deadline)
        return try await withTaskCancellationHandler {
            try await task.futureResult.get()
        } onCancel: {
            task.cancel()
        }
    }
}
