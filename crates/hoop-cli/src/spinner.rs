//! A spinner on a line of a terminal, turning on a thread of its own while hoop waits (for
//! reviewers to approve a session).

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The frames, shown in turn (ASCII: any terminal shows them).
const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

/// How long each frame shows.
const INTERVAL: Duration = Duration::from_millis(120);

/// Erases the line the cursor is on.
const CLEAR_LINE: &str = "\r\x1b[2K";

/// Shows `<frame> <text>` on the current line until dropped; then the line reads
/// `<text>` and a newline follows.
pub(crate) struct Spinner {
    /// Dropping it tells the thread to stop.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts turning on `out` (a terminal). When no thread can be started, `text` is
    /// printed once instead.
    pub(crate) fn start<W: Write + Send + 'static>(out: W, text: String) -> Self {
        Self::with_interval(out, text, INTERVAL)
    }

    fn with_interval<W: Write + Send + 'static>(
        mut out: W,
        text: String,
        interval: Duration,
    ) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        // The text moves to the thread; keep a copy for when it cannot start.
        let fallback = text.clone();
        let spawned = std::thread::Builder::new()
            .name("spinner".to_owned())
            .spawn(move || spin(&mut out, &text, &stopped, interval));
        match spawned {
            Ok(thread) => Self {
                stop: Some(stop),
                thread: Some(thread),
            },
            Err(_) => {
                let mut err = std::io::stderr();
                // Nowhere to report a failing stderr.
                let _ = writeln!(err, "{fallback}").and_then(|()| err.flush());
                Self {
                    stop: None,
                    thread: None,
                }
            }
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        // The channel closes: the thread writes the final line and ends.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: a frame every `interval` until told to stop, then the text alone.
fn spin(out: &mut impl Write, text: &str, stopped: &mpsc::Receiver<()>, interval: Duration) {
    // A failing terminal is not worth failing the session for: writes are best effort.
    for frame in FRAMES.iter().cycle() {
        let _ = write!(out, "{CLEAR_LINE}{frame} {text}").and_then(|()| out.flush());
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = writeln!(out, "{CLEAR_LINE}{text}").and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer whose bytes the test can read while the spinner holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn turns_until_dropped_then_leaves_the_text() {
        let out = Shared::default();
        let spinner =
            Spinner::with_interval(out.clone(), "waiting".to_owned(), Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(60));
        drop(spinner);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.starts_with("\r\x1b[2K| waiting\r\x1b[2K/ waiting"),
            "{text:?}"
        );
        assert!(text.ends_with("\r\x1b[2Kwaiting\n"), "{text:?}");
        assert_eq!(text.matches('\n').count(), 1, "{text:?}");
        // Nothing is written once it is dropped.
        let len = out.0.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(out.0.lock().unwrap().len(), len);
    }

    #[test]
    fn stopped_at_once_still_ends_the_line() {
        let out = Shared::default();
        drop(Spinner::start(out.clone(), "w".to_owned()));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "\r\x1b[2K| w\r\x1b[2Kw\n");
    }
}
