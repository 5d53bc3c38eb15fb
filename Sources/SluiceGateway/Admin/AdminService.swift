import ServiceLifecycle

/// The admin listener under ServiceLifecycle: open until the group shuts it down. It comes
/// before the data listener in the group, so it closes after the drain: health checks and
/// `/metrics` keep answering while exchanges finish.
struct AdminService: Service {
    let gateway: Gateway

    func run() async throws {
        try? await gracefulShutdown()
        await gateway.closeAdmin()
    }
}
