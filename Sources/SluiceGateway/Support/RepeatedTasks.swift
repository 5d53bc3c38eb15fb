import NIOConcurrencyHelpers
import NIOCore

/// The repeated tasks a background job started (scrapes, scale ticks), cancelled together when
/// the gateway stops; safe from any thread.
final class RepeatedTasks: Sendable {
    private let tasks = NIOLockedValueBox<[RepeatedTask]>([])

    func set(_ started: [RepeatedTask]) {
        tasks.withLockedValue { $0 = started }
    }

    func cancelAll() {
        let running = tasks.withLockedValue { tasks in
            defer { tasks = [] }
            return tasks
        }
        for task in running { task.cancel() }
    }
}
