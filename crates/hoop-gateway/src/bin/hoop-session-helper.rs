//! `hoop-session-helper`: the processes of a session on the gateway's local agent (its
//! supervisor, and the exec helper that becomes its program), in a small binary of their
//! own. The local agent finds it beside `hoop-gateway` and starts it for every session
//! instead of executing the whole gateway again: a fraction of the CPU and memory per
//! session. Without it, the agent runs the helpers from the gateway's own binary (the same
//! code, slower to start). Not meant to be run by hand.

fn main() -> std::process::ExitCode {
    let code = hoop_agent::run_session_helper();
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
