-- Record the recipient results of one bounce message (execute_values).
INSERT INTO net119.bounce_results (
    bounce_message_id, position, reminder_id, correlated_by, recipient,
    original_recipient, action, status_code, smtp_code, diagnostic, category,
    is_final_failure, carrier, effect
)
VALUES %s
