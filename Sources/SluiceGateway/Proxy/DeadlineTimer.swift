import NIOCore

/// A connection's one timer. It is kept across exchanges and rescheduled only when something is
/// due earlier than it fires; a timer that fires early re-evaluates and re-arms. So a keep-alive
/// connection schedules about once per timeout period, not once per request, and body parts
/// never touch it.
struct DeadlineTimer {
    private var callback: NIOScheduledCallback?
    private var deadline = NIODeadline.distantFuture

    /// Makes sure the timer fires no later than `by`.
    mutating func ensure(firesBy by: NIODeadline, on loop: any EventLoop, _ handler: some NIOScheduledCallbackHandler) {
        if callback != nil, deadline <= by { return }
        callback?.cancel()
        deadline = by
        callback = try? loop.assumeIsolated().scheduleCallback(at: by, handler: handler)
    }

    /// The timer fired (it must be ensured again for the next deadline).
    mutating func fired() {
        callback = nil
        deadline = .distantFuture
    }

    mutating func cancel() {
        callback?.cancel()
        fired()
    }
}

/// What a `DeadlineTimer` runs when it fires.
struct DeadlineCallback: NIOScheduledCallbackHandler {
    let fire: () -> Void

    func handleScheduledCallback(eventLoop: some EventLoop) {
        fire()
    }
}
