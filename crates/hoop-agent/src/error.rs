//! The crate's one error type.

/// What can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The agent's options cannot work (an unknown user, a missing working directory...).
    #[error("{0}")]
    Options(String),
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What the agent was doing.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The stream of the gateway's messages failed (the connection was lost).
    #[error("the gateway's stream failed: {0}")]
    Incoming(String),
    /// The gateway stopped taking the agent's messages.
    #[error("the gateway stopped taking the agent's messages")]
    OutgoingClosed,
    /// A frame's length prefix is beyond [`MAX_FRAME`](crate::MAX_FRAME).
    #[error("a frame of {len} bytes is larger than the limit of {max} bytes")]
    FrameTooLarge {
        /// The length the frame announced (or would have).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("the stream ended in the middle of a frame")]
    TruncatedFrame,
    /// A frame does not hold a valid message.
    #[error("a frame does not hold a valid message: {0}")]
    Decode(#[from] prost::DecodeError),
}

impl AgentError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
