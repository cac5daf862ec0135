"""What every table and column means, in one place: the Parquet files carry each column's
sentence as field metadata (``description``) and the README's table reference is generated
from it (``python docs/table_reference.py``; a test fails when they drift).

Data only, no imports from the pipeline: schemas.py holds the dtypes, this the meaning.
"""

from __future__ import annotations

import re

#: One sentence per table: what a row is.
TABLE_DESCRIPTIONS: dict[str, str] = {
    "associations": "One row per association attempt (a TCP connection that carried an "
                    "A-ASSOCIATE-RQ, or DICOM PDUs on a `--port`).",
    "presentation_contexts": "One row per presentation context the requestor proposed, with "
                             "the acceptor's answer.",
    "messages": "One row per DIMSE message: a command set and its data set, if any.",
    "objects": "One row per data set a message carried (C-STORE data sets, C-FIND "
               "identifiers, N-* data sets...).",
    "findings": "What an expert would point at, one sentence each.",
    "operations": "One row per DIMSE operation: a request, every response to it (pending and "
                  "final) and a C-CANCEL sent for it; the unit of timing and of "
                  "query/retrieve correlation.",
    "queries": "One row per C-FIND, C-MOVE or C-GET request: its identifier read as a query.",
    "query_keys": "One row per element of a query or response identifier (long format).",
    "connection_attempts": "TCP connections that never carried a byte, to or from a host that "
                           "speaks DICOM in the capture (a C-MOVE callback that failed).",
    "commitments": "One row per Storage Commitment transaction: the request (N-ACTION) "
                   "and the result that answers it (N-EVENT-REPORT), matched by Transaction "
                   "UID.",
    "procedure_steps": "One row per Modality Performed Procedure Step: its N-CREATE and the "
                       "N-SETs that end it, matched by SOP Instance UID.",
    "captures": "One row per capture file given (per file of a ring-buffer set).",
    "throughput": "Bytes per time bin and sender, for associations that moved 1 MiB or more.",
}

_CAPTURE = "The capture file as given on the command line (the file its association's first " \
           "packet is in, for a ring-buffer set)."
_AID = "The association: 0, 1, 2... in order of first packet within the capture."
_FIRST = "Frame number (as Wireshark counts it) of the first packet."
_LAST = "Frame number of the last packet."
_BOTTLENECK = "Who made it slow: `scu`, `network` or `scp`; null when nothing stood out."

#: One sentence per column, per table. Units are in the names (`_ms`, `_bytes`, `_at` UTC).
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "associations": {
        "capture": _CAPTURE, "assoc_id": _AID,
        "tcp_stream": "tshark's `tcp.stream` number of the connection.",
        "requestor_ip": "Address of the requestor (the side that sent A-ASSOCIATE-RQ).",
        "requestor_port": "TCP port of the requestor.",
        "acceptor_ip": "Address of the acceptor.", "acceptor_port": "TCP port of the acceptor.",
        "calling_ae": "Calling AE title as sent, padding spaces stripped.",
        "called_ae": "Called AE title as sent, padding spaces stripped.",
        "requested_at": "When the A-ASSOCIATE-RQ's first byte was captured (UTC).",
        "responded_at": "When the A-ASSOCIATE-AC or -RJ's first byte was captured.",
        "ended_at": "When the association ended (release reply, abort or TCP close); null "
                    "while open at the end of the capture.",
        "result": "`accepted`, `rejected`, `no-response` or `unknown` (the capture starts "
                  "after the negotiation).",
        "ending": "`released`, `aborted`, `closed` (TCP closed without release) or `open` "
                  "(the capture ended first).",
        "reject_result": "A-ASSOCIATE-RJ Result (1 permanent, 2 transient; PS3.8 9.3.4).",
        "reject_source": "A-ASSOCIATE-RJ Source (1 service user, 2 ACSE provider, 3 "
                         "presentation provider).",
        "reject_reason": "A-ASSOCIATE-RJ Reason/Diag. as sent.",
        "abort_source": "A-ABORT Source (0 service user, 2 service provider).",
        "abort_reason": "A-ABORT Reason/Diag. as sent.",
        "reject_text": "The reject's result, source and reason in words.",
        "abort_text": "The abort's source and reason in words.",
        "max_pdu_requestor": "Maximum PDU length the requestor can receive (0: unlimited).",
        "max_pdu_acceptor": "Maximum PDU length the acceptor can receive (0: unlimited).",
        "impl_class_uid_requestor": "Implementation Class UID the requestor sent.",
        "impl_version_requestor": "Implementation Version Name the requestor sent.",
        "impl_class_uid_acceptor": "Implementation Class UID the acceptor sent.",
        "impl_version_acceptor": "Implementation Version Name the acceptor sent.",
        "message_count": "DIMSE messages on the association (was `messages`).",
        "object_count": "Data sets carried on the association (was `objects`).",
        "bytes_requestor": "DICOM bytes (PDUs) the requestor sent.",
        "bytes_acceptor": "DICOM bytes (PDUs) the acceptor sent.",
        "application_context": "Application Context Name UID proposed.",
        "async_ops_invoked_requestor": "Asynchronous Operations Window: operations the "
                                       "requestor may invoke (null when not negotiated).",
        "async_ops_performed_requestor": "Asynchronous Operations Window: operations the "
                                         "requestor may perform.",
        "async_ops_invoked_acceptor": "Asynchronous Operations Window: the acceptor's "
                                      "invoked.",
        "async_ops_performed_acceptor": "Asynchronous Operations Window: the acceptor's "
                                        "performed.",
        "user_identity_type": "User Identity type proposed (1 user name ... 5 JWT).",
        "user_identity_text": "The user identity type in words.",
        "user_identity_username": "The user name sent (never the passcode).",
        "first_frame": _FIRST, "last_frame": _LAST,
        "pdus_requestor": "PDUs the requestor sent.", "pdus_acceptor": "PDUs the acceptor sent.",
        "gap_bytes": "Bytes of the connection missing from the capture (loss at the capture "
                     "point, snapshot length).",
        "abort_sender": "Who sent the A-ABORT: `requestor` or `acceptor`.",
        "retransmitted_bytes_requestor": "TCP bytes of the requestor's that the capture saw "
                                         "twice (sent again; a copy that filled a gap is "
                                         "not: out_of_order_requestor).",
        "retransmitted_bytes_acceptor": "TCP bytes of the acceptor's that the capture saw "
                                        "twice (as for the requestor).",
        "out_of_order_requestor": "Requestor segments captured ahead of a missing one "
                                  "(lost before the capture point, or reordered).",
        "out_of_order_acceptor": "Acceptor segments captured ahead of a missing one.",
        "duration_ms": "From the A-ASSOCIATE-RQ (or the first packet) to the end of the "
                       "association, in ms; null while open.",
        "setup_ms": "From the A-ASSOCIATE-RQ to the acceptor's answer (AC or RJ), in ms, at "
                    "the capture point.",
        "rtt_ms": "TCP round trip at the capture point, in ms (handshake, else the smallest "
                  "data-to-ACK sample).",
        "rtt_requestor_ms": "Capture point to the requestor and back, in ms.",
        "rtt_acceptor_ms": "Capture point to the acceptor and back, in ms.",
        "rtt_source": "`handshake` or `data`: where the round trip was measured.",
        "capture_point": "Where the capture was taken: `requestor`, `acceptor` or `between`; "
                         "null when the round trip is too short to tell.",
        "window_scale_known": "Whether both SYNs were captured (window scale known).",
        "window_scale_requestor": "Window scale shift the requestor announced.",
        "window_scale_acceptor": "Window scale shift the acceptor announced.",
        "max_window_requestor": "Largest receive window the requestor advertised, in bytes.",
        "max_window_acceptor": "Largest receive window the acceptor advertised, in bytes.",
        "zero_window_ms": "Time either side advertised a zero receive window, in ms.",
        "release_ms": "From A-RELEASE-RQ to A-RELEASE-RP, in ms.",
        "active_ms": "Time spent inside operations, in ms.",
        "idle_ms": "Time between operations (nothing outstanding), in ms.",
        "idle_share": "idle_ms as a share of the association's duration (0-1).",
        "throughput_mbps": "DICOM bytes of both sides over the active time, in Mbit/s.",
        "scu_ms": "Time the slow operations waited on the SCU, summed, in ms.",
        "network_ms": "Time the slow operations waited on the network, summed, in ms.",
        "scp_ms": "Time the slow operations waited on the SCP, summed, in ms.",
        "bottleneck": "The party the association's slow operations waited on longest.",
        "bottleneck_detail": "One sentence with the numbers behind `bottleneck`.",
        "tls": "Whether the association ran over TLS (DICOM TLS secure transport).",
        "tls_version": "TLS version the handshake agreed (`TLS 1.2`, `TLS 1.3`), where tshark "
                       "shows it.",
        "tls_cipher_suite": "Name of the cipher suite the server chose.",
        "tls_cipher_suite_id": "Number of the cipher suite the server chose (IANA registry).",
        "tls_server_name": "Server name (SNI) the client asked for.",
        "tls_certificate_subject": "Subject of the server's certificate, where the handshake "
                                   "shows it (TLS 1.2 and earlier).",
        "tls_decrypted": "Whether the session keys were there and the DICOM inside was "
                         "decoded; null for clear associations.",
        "tls_alert": "The first fatal TLS alert (description), null without one.",
        "tls_alert_sender": "Who sent `tls_alert`: `requestor` or `acceptor`.",
    },
    "presentation_contexts": {
        "capture": _CAPTURE, "assoc_id": _AID,
        "context_id": "Presentation context ID (odd, 1-255).",
        "abstract_syntax": "Abstract syntax (SOP class) UID proposed.",
        "abstract_syntax_name": "The abstract syntax's name.",
        "proposed_transfer_syntaxes": "Transfer syntax UIDs proposed, in order (a list).",
        "result": "Acceptor's result: 0 acceptance, 1 user rejection, 2 no reason, 3 abstract "
                  "syntax not supported, 4 transfer syntaxes not supported; null without an "
                  "A-ASSOCIATE-AC.",
        "result_text": "The result in words.",
        "transfer_syntax": "The accepted transfer syntax UID, else null.",
        "transfer_syntax_name": "The accepted transfer syntax's name.",
        "scu_role_proposed": "SCP/SCU Role Selection: SCU role proposed (null: not proposed).",
        "scp_role_proposed": "SCP/SCU Role Selection: SCP role proposed.",
        "scu_role_accepted": "SCP/SCU Role Selection: SCU role accepted.",
        "scp_role_accepted": "SCP/SCU Role Selection: SCP role accepted.",
        "ext_neg_requested": "SOP Class Extended Negotiation proposed (hex bytes).",
        "ext_neg_accepted": "SOP Class Extended Negotiation accepted (hex bytes).",
    },
    "messages": {
        "capture": _CAPTURE, "assoc_id": _AID,
        "msg_index": "Order of the message within the association (0, 1, ...).",
        "sender": "`requestor` or `acceptor` (of the association).",
        "context_id": "Presentation context the message used.",
        "command": "The command, e.g. `C-STORE-RQ`, `C-FIND-RSP`, `N-ACTION-RQ`; null when "
                   "the command set could not be read (cut by the capture).",
        "command_field": "Command Field (0000,0100) as sent.",
        "message_id": "Message ID (0000,0110).",
        "responds_to": "Message ID Being Responded To (0000,0120).",
        "request_index": "For a response: `msg_index` of its request.",
        "sop_class_uid": "Affected (or Requested) SOP Class UID.",
        "sop_class_name": "The SOP class's name.",
        "sop_instance_uid": "Affected (or Requested) SOP Instance UID.",
        "priority": "Priority (0 medium, 1 high, 2 low).",
        "move_destination": "Move Destination AE title of a C-MOVE-RQ.",
        "move_originator_ae": "Move Originator AE title of a sub-operation C-STORE-RQ.",
        "move_originator_message_id": "Move Originator Message ID of a sub-operation "
                                      "C-STORE-RQ.",
        "status": "Status (0000,0900) as an integer; see `status_hex`.",
        "status_hex": "The status as DICOM engineers read it, e.g. `0xA700`.",
        "status_category": "`Success`, `Pending`, `Warning`, `Failure` or `Cancel`.",
        "status_text": "What the status means for this service (PS3.7 annex C, PS3.4).",
        "error_comment": "Error Comment (0000,0902) as sent.",
        "remaining": "Number of Remaining Sub-operations.",
        "completed": "Number of Completed Sub-operations.",
        "failed": "Number of Failed Sub-operations.",
        "warning": "Number of Warning Sub-operations.",
        "has_dataset": "Whether the command says a data set follows.",
        "dataset_bytes": "Size of the data set as it travelled, in bytes.",
        "first_frame": _FIRST, "last_frame": _LAST,
        "started_at": "When the message's first byte was captured (UTC).",
        "ended_at": "When its last byte was captured.",
        "duration_ms": "From its first to its last byte, in ms.",
        "fragments": "PDV fragments that carried it.",
        "problem": "Why the message is not whole, else null.",
    },
    "objects": {
        "capture": _CAPTURE, "assoc_id": _AID,
        "msg_index": "The message that carried the data set.",
        "command": "That message's command.",
        "sender": "`requestor` or `acceptor`.",
        "sop_class_uid": "SOP Class UID from the command.",
        "sop_class_name": "The SOP class's name.",
        "sop_instance_uid": "SOP Instance UID from the command.",
        "study_instance_uid": "Study Instance UID (0020,000D) of a C-STORE's data set, read "
                              "from its first 64 KiB as it travelled (null: not there, "
                              "further on, or not a C-STORE).",
        "series_instance_uid": "Series Instance UID (0020,000E), read the same way.",
        "modality": "Modality (0008,0060), read the same way.",
        "accession_number": "Accession Number (0008,0050), read the same way, in the data "
                            "set's Specific Character Set.",
        "transfer_syntax": "Transfer syntax of the data set: the context's, or the encoding "
                           "its bytes are in when they plainly are not in the context's "
                           "(finding dataset-encoding-mismatch).",
        "transfer_syntax_name": "The transfer syntax's name.",
        "transfer_syntax_inferred": "True when the negotiation is not in the capture and the "
                                    "transfer syntax was read from the data set's first bytes.",
        "dataset_bytes": "Bytes of the data set as it travelled.",
        "sha256": "SHA-256 of the data set bytes exactly as they travelled (no meta header).",
        "complete": "Whether every byte of the data set is in the capture.",
        "problem": "Why it is not complete, else null.",
        "path": "The Part-10 file written, relative to OUT, else null.",
        "meta_notes": "What was adjusted to write the file meta header, if anything.",
    },
    "findings": {
        "capture": _CAPTURE, "assoc_id": "The association it is about (null: the capture).",
        "msg_index": "The message it is about, if one.",
        "frame": "A frame to look at in Wireshark (`frame.number == N`).",
        "severity": "`error`, `warning` or `note`.",
        "code": "Stable kebab-case id, e.g. `association-rejected` (README lists them).",
        "summary": "One plain sentence naming the AE titles, UIDs and values involved.",
    },
    "operations": {
        "capture": _CAPTURE, "assoc_id": _AID,
        "op_index": "Order of the request within the association (0, 1, ...).",
        "command": "`C-STORE`, `C-FIND`, `C-MOVE`, `C-GET`, `C-ECHO`, `N-ACTION`...",
        "scu": "Which side invoked it: `requestor` or `acceptor` (of the association).",
        "scp": "Which side performed it.",
        "scu_ae": "The SCU's AE title.", "scp_ae": "The SCP's AE title.",
        "message_id": "Message ID of the request.",
        "request_index": "`msg_index` of the request.",
        "final_response_index": "`msg_index` of the final response (null: none seen).",
        "response_count": "Responses seen, pending and final (was `responses`).",
        "pending_response_count": "Pending responses seen (was `pending_responses`).",
        "cancel_index": "`msg_index` of a C-CANCEL-RQ sent for it.",
        "sop_class_uid": "SOP Class UID of the request.",
        "sop_class_name": "The SOP class's name.",
        "sop_instance_uid": "SOP Instance UID of the request; for an N-CREATE whose request "
                            "gave none, the one the SCP assigned in its response.",
        "move_destination": "A C-MOVE's Move Destination AE title.",
        "status": "Final status as an integer; see `status_hex`.",
        "status_hex": "Final status as DICOM engineers read it, e.g. `0xA700`.",
        "status_category": "`Success`, `Pending`, `Warning`, `Failure` or `Cancel`.",
        "status_text": "What the final status means for this service.",
        "error_comment": "Error Comment of the final response.",
        "remaining": "Final Number of Remaining Sub-operations.",
        "completed": "Final Number of Completed Sub-operations.",
        "failed": "Final Number of Failed Sub-operations.",
        "warning": "Final Number of Warning Sub-operations.",
        "parent_assoc_id": "For a sub-operation C-STORE: the association of the C-MOVE or "
                           "C-GET it serves.",
        "parent_op_index": "For a sub-operation C-STORE: the op_index of that C-MOVE or "
                           "C-GET.",
        "callback_assoc_ids": "For a C-MOVE: the associations that carried its "
                              "sub-operations, or tried to (a list).",
        "callback_attempt_ids": "For a C-MOVE: the failed connection attempts to its "
                                "destination (rows of connection_attempts; a list).",
        "suboperations_seen": "Sub-operation C-STOREs linked to it.",
        "suboperations_failed": "Linked sub-operation C-STOREs that failed.",
        "link": "How the link was made: `move-originator`, `ae-and-time`, `same-association`, "
                "`uncertain`.",
        "request_first_at": "First byte of the request (UTC).",
        "request_complete_at": "Last byte of the request.",
        "response_first_at": "First byte of the first response.",
        "response_complete_at": "Last byte of the final response.",
        "gap_before_ms": "Idle time on the association before the request (since the "
                         "A-ASSOCIATE-AC or the previous final response), in ms; 0 when "
                         "the SCU sent it while one of its own was outstanding.",
        "request_transfer_ms": "First to last byte of the request, in ms.",
        "turnaround_ms": "Last request byte to first response byte, in ms.",
        "response_transfer_ms": "First response byte to the final response's last byte, "
                                 "in ms.",
        "total_ms": "First request byte to the final response's last byte, in ms.",
        "gap_network_ms": "The network's share of gap_before_ms (half a round trip, and the "
                          "wait for a response the SCP sent again), in ms.",
        "turnaround_network_ms": "The network's share of turnaround_ms, in ms.",
        "request_bytes": "Bytes of the request (command and data set PDUs).",
        "response_bytes": "Bytes of the responses.",
        "request_mbps": "request_bytes over request_transfer_ms, in Mbit/s.",
        "retransmitted_bytes": "TCP bytes retransmitted during the operation.",
        "zero_window_ms": "Time a receiver advertised a zero window during it, in ms.",
        "window_full_ms": "Time the sender's data filled the receiver's window, in ms.",
        "rtt_ms": "Round trip at the capture point during it, in ms.",
        "scu_ms": "Time the operation waited on the SCU, in ms.",
        "network_ms": "Time it waited on the network, in ms.",
        "scp_ms": "Time it waited on the SCP, in ms.",
        "bottleneck": _BOTTLENECK,
        "bottleneck_detail": "One sentence with the numbers, e.g. `scp: 502 ms from the last "
                             "request byte to the C-STORE-RSP`.",
        "first_frame": _FIRST, "last_frame": _LAST,
    },
    "queries": {
        "capture": _CAPTURE, "assoc_id": _AID,
        "op_index": "The operation (operations.op_index).",
        "command": "`C-FIND`, `C-MOVE` or `C-GET`.",
        "information_model": "The query/retrieve information model (SOP class name).",
        "query_level": "Query/Retrieve Level (0008,0052) as sent.",
        "move_destination": "A C-MOVE's Move Destination.",
        "matching_keys": "Keys with a value, as `Keyword=value` (a list).",
        "return_keys": "Keys asked for without a value (a list of keywords).",
        "match_count": "Pending responses with an identifier (was `matches`).",
        "status_hex": "Final status, e.g. `0x0000`.",
        "status_category": "Final status category.",
        "refined_from_op": "An earlier query on the association whose answer gave a value "
                           "this one reuses.",
        "diagnosis": "For a C-FIND that matched nothing: the likely reason (README lists "
                     "them).",
        "diagnosis_detail": "The diagnosis in one sentence.",
        "failed_sop_instances": "Failed SOP Instance UID List of the final response (a list).",
        "identifier_problem": "Why the identifier could not be read, else null.",
    },
    "query_keys": {
        "capture": _CAPTURE, "assoc_id": _AID,
        "op_index": "The operation (operations.op_index).",
        "source": "`request` or `response`.",
        "response_number": "0 for the request, 1, 2... for each pending response.",
        "tag": "The element's tag, e.g. `(0010,0010)`.",
        "keyword": "The element's keyword, e.g. `PatientName`.",
        "vr": "Value representation.",
        "value": "Text exactly as sent, padding kept, read in the identifier's Specific "
                 "Character Set (Latin-1 where it declares none, or the bytes are no text "
                 "in it); null for a sequence.",
        "empty": "Whether the value is empty (a return key).",
    },
    "connection_attempts": {
        "capture": _CAPTURE,
        "attempt_id": "0, 1, ... in order within the capture.",
        "tcp_stream": "tshark's `tcp.stream` number.",
        "client_ip": "Who tried to connect.", "client_port": "Its port.",
        "server_ip": "Where to.", "server_port": "The port it tried.",
        "first_at": "First SYN (UTC).", "last_at": "Last packet of the attempt.",
        "frame": "Frame of the first SYN.",
        "syn_count": "SYNs sent (was `syns`).",
        "outcome": "`refused` (answered by RST) or `unanswered`.",
        "move_assoc_id": "The association of the C-MOVE it was for.",
        "move_op_index": "That C-MOVE's op_index.",
    },
    "commitments": {
        "capture": _CAPTURE,
        "transaction_uid": "Transaction UID (0008,1195) of the request and its result.",
        "assoc_id": "The association of the request (N-ACTION); null if the capture has "
                    "only the result.",
        "op_index": "The request's operation (operations.op_index).",
        "scu_ae": "The AE title that asked for the commitment (a modality).",
        "scp_ae": "The AE title asked to commit (an archive).",
        "requested_at": "When the N-ACTION-RQ was complete (UTC).",
        "requested_count": "Instances the request listed (Referenced SOP Sequence).",
        "request_status_hex": "Status of the N-ACTION-RSP, e.g. `0x0000`.",
        "result_assoc_id": "The association of the result (N-EVENT-REPORT); null if none "
                           "came in the capture.",
        "result_op_index": "The result's operation (operations.op_index).",
        "result_on": "`same-association` or `new-association` (the SCP opened one to the "
                     "SCU); null without a request in the capture.",
        "result_at": "When the N-EVENT-REPORT-RQ was complete (UTC).",
        "wait_ms": "From the N-ACTION-RQ to the result's N-EVENT-REPORT-RQ.",
        "committed_count": "Instances the result lists as committed (Referenced SOP "
                           "Sequence).",
        "failed_count": "Instances the result lists as failed (Failed SOP Sequence).",
        "failure_reasons": "Each Failure Reason given with its count, e.g. `No such object "
                           "instance (0x0112): 1` (a list).",
        "failed_sop_instances": "The failed instances' SOP Instance UIDs (the first 100; a "
                                "list).",
        "outcome": "`committed`, `failures`, `unanswered` (accepted, no result in the "
                   "capture) or `refused` (the N-ACTION failed).",
        "problem": "Why a request's or result's data set could not be read, else null.",
    },
    "procedure_steps": {
        "capture": _CAPTURE,
        "sop_instance_uid": "The step's SOP Instance UID (the N-CREATE's Affected, or the "
                            "one the RIS assigned in its response; each N-SET's Requested).",
        "assoc_id": "The association of the N-CREATE; null if the capture has only N-SETs.",
        "op_index": "The N-CREATE's operation (operations.op_index).",
        "scu_ae": "The AE title that reported the step (a modality).",
        "scp_ae": "The AE title it reported to (a RIS or MPPS manager).",
        "station_ae": "Performed Station AE Title, as the modality sent it.",
        "pps_id": "Performed Procedure Step ID.",
        "accession_number": "Accession Number of the scheduled step it performed.",
        "study_instance_uid": "Study Instance UID of the scheduled step it performed.",
        "created_at": "When the N-CREATE-RQ was complete (UTC).",
        "create_status_hex": "Status of the N-CREATE-RSP, e.g. `0x0000`.",
        "set_count": "N-SETs of the step in the capture.",
        "final_assoc_id": "The association of the accepted N-SET that ended the step "
                          "(`COMPLETED` or `DISCONTINUED`), else null.",
        "final_op_index": "That N-SET's operation (operations.op_index).",
        "status": "The step's status as last accepted: `IN PROGRESS`, `COMPLETED` or "
                  "`DISCONTINUED`.",
        "ended_at": "When that N-SET-RQ was complete (UTC).",
        "duration_ms": "From the N-CREATE to the N-SET that ended the step.",
        "image_count": "Images the step lists (Performed Series Sequence > Referenced Image "
                       "Sequence), in its last accepted N-SET that lists any.",
        "stored_count": "How many of them a C-STORE in this capture stored successfully.",
        "discontinuation_reason": "The reason a discontinued step gave (code meaning and "
                                  "value).",
        "outcome": "`completed`, `discontinued`, `in-progress` (no accepted N-SET ended it "
                   "in the capture) or `refused` (the N-CREATE failed).",
        "problem": "Why an N-CREATE's or N-SET's data set could not be read, else null.",
    },
    "captures": {
        "capture": _CAPTURE,
        "path": "Absolute path of the file read.",
        "key": "Stable key of the capture: its path below the folder given, else its file "
               "name; names its parts and objects folder, the same whatever the working "
               "folder.",
        "size_bytes": "Size of the file.", "mtime_ns": "Modification time (ns since 1970).",
        "sha256": "SHA-256 of the file (runs with `--resume --verify`).",
        "packets": "Packets read.",
        "first_packet_at": "Time of the first packet (UTC).",
        "last_packet_at": "Time of the last packet.",
        "link_type": "Link-layer type.", "engine": "`raw` or `ek` (README, How it works).",
        "tshark_version": "The tshark that read it.",
        "status": "`ok` or `failed`.", "error": "Why it failed, else null.",
        "elapsed_s": "Analysis time, in seconds.",
        "association_count": "Associations whose first packet is in it (was `associations`).",
    },
    "throughput": {
        "capture": _CAPTURE, "assoc_id": _AID,
        "sender": "`requestor` or `acceptor`.", "bin_start": "Start of the bin (UTC).",
        "bin_ms": "Width of the bin, in ms.", "bytes": "TCP payload bytes sent in the bin.",
        "mbps": "bytes over bin_ms, in Mbit/s.",
    },
}

#: Columns renamed since 0.1 (table -> old -> new); `tshark_dicom.load` reads either.
RENAMED: dict[str, dict[str, str]] = {
    "associations": {"messages": "message_count", "objects": "object_count"},
    "operations": {"responses": "response_count",
                   "pending_responses": "pending_response_count"},
    "queries": {"matches": "match_count"},
    "connection_attempts": {"syns": "syn_count"},
    "captures": {"associations": "association_count"},
}

_TYPES = {"Int64": "integer", "Float64": "float", "string": "text", "bool": "bool",
          "boolean": "bool (nullable)", "object": "list"}

BEGIN = "<!-- table reference: generated by `python docs/table_reference.py` -->"
END = "<!-- end of table reference -->"


def reference_markdown(schemas: dict[str, dict[str, str]]) -> str:
    """The README's table reference, from the schemas (dtypes) and the sentences here."""
    out = [BEGIN, ""]
    for table, columns in schemas.items():
        out += [f"#### `{table}`", "", TABLE_DESCRIPTIONS[table], "",
                "| column | type | meaning |", "|---|---|---|"]
        for name, dtype in columns.items():
            kind = "timestamp (UTC, µs)" if dtype.startswith("datetime64") else _TYPES[dtype]
            text = DESCRIPTIONS[table][name].replace("|", "\\|")
            out.append(f"| `{name}` | {kind} | {text} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def replace_reference(readme: str, reference: str) -> str:
    """The README text with its table reference block replaced by ``reference``."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError("the README has no table reference block")
    return pattern.sub(lambda _: reference, readme)
