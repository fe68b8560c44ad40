//! MongoDB wire protocol framing for the scripted server: OP_MSG (opcode
//! 2013) requests in, OP_MSG replies out.
//!
//! A message is a 16-byte header (messageLength, requestID, responseTo,
//! opCode; little-endian i32s), then for OP_MSG the flagBits (u32) and
//! sections: kind 0 is the command body (one BSON document), kind 1 a
//! document sequence (i32 size, C-string identifier, documents), folded
//! here into the body as an array under its identifier. An optional CRC-32C
//! checksum (flag bit 0) ends the message. The driver (3.x) speaks OP_MSG
//! from the first handshake on; any other opcode is reported as an error.

use std::io;

use mongodb::bson::{Bson, Document};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const OP_MSG: i32 = 2013;
const CHECKSUM_PRESENT: u32 = 1;

/// One request: its id (for the reply's responseTo) and command.
#[derive(Debug)]
pub struct Request {
    pub request_id: i32,
    pub command: Document,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The next request, or `None` when the client closed the connection.
pub async fn read_request(stream: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut header = [0u8; 16];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let field = |at: usize| i32::from_le_bytes(header[at..at + 4].try_into().unwrap());
    let (length, request_id, op_code) = (field(0), field(4), field(12));
    let body_length =
        usize::try_from(length - 16).map_err(|_| invalid(format!("length {length}")))?;
    let mut body = vec![0u8; body_length];
    stream.read_exact(&mut body).await?;
    if op_code != OP_MSG {
        return Err(invalid(format!("opcode {op_code} is not OP_MSG")));
    }
    Ok(Some(Request {
        request_id,
        command: parse_op_msg(&body)?,
    }))
}

/// The command of an OP_MSG body (after the header).
fn parse_op_msg(body: &[u8]) -> io::Result<Document> {
    let flags = u32::from_le_bytes(body[..4].try_into().unwrap());
    let end = body.len() - if flags & CHECKSUM_PRESENT != 0 { 4 } else { 0 };
    let mut at = 4;
    let mut command = None;
    let mut sequences = Vec::new();
    while at < end {
        let kind = body[at];
        at += 1;
        let size = i32::from_le_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        match kind {
            0 => {
                command = Some(
                    Document::from_reader(&body[at..at + size])
                        .map_err(|e| invalid(e.to_string()))?,
                );
            }
            1 => {
                let section = &body[at + 4..at + size];
                let nul = section.iter().position(|b| *b == 0).unwrap();
                let identifier = String::from_utf8_lossy(&section[..nul]).into_owned();
                let mut documents = Vec::new();
                let mut rest = &section[nul + 1..];
                while !rest.is_empty() {
                    let len = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                    documents.push(Bson::Document(
                        Document::from_reader(&rest[..len]).map_err(|e| invalid(e.to_string()))?,
                    ));
                    rest = &rest[len..];
                }
                sequences.push((identifier, documents));
            }
            other => return Err(invalid(format!("OP_MSG section kind {other}"))),
        }
        at += size;
    }
    let mut command = command.ok_or_else(|| invalid("OP_MSG without a body".into()))?;
    for (identifier, documents) in sequences {
        command.insert(identifier, documents);
    }
    Ok(command)
}

/// Sends `reply` as an OP_MSG answering request `response_to`.
pub async fn write_reply(
    stream: &mut TcpStream,
    request_id: i32,
    response_to: i32,
    reply: &Document,
) -> io::Result<()> {
    let mut document = Vec::new();
    reply
        .to_writer(&mut document)
        .map_err(|e| invalid(e.to_string()))?;
    let length = 16 + 4 + 1 + document.len();
    let mut message = Vec::with_capacity(length);
    for field in [length as i32, request_id, response_to, OP_MSG] {
        message.extend_from_slice(&field.to_le_bytes());
    }
    message.extend_from_slice(&0u32.to_le_bytes());
    message.push(0);
    message.extend_from_slice(&document);
    stream.write_all(&message).await
}
