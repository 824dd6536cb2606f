"""A FastAGI client that speaks like Asterisk's AGI(): tests and the bench use it."""

from __future__ import annotations

import asyncio


async def agi_admit(port: int, tenant: str, number: str, call_id: str, direction: str = "out",
                    channel: str = "PJSIP/x-0001") -> dict[str, str]:
    """The variables the server set for one admission request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    env = {"agi_network": "yes", "agi_network_script": "admit", "agi_request": f"agi://127.0.0.1:{port}/admit",
           "agi_channel": channel, "agi_uniqueid": call_id, "agi_arg_1": tenant, "agi_arg_2": number,
           "agi_arg_3": call_id, "agi_arg_4": direction}
    writer.write("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
    await writer.drain()
    variables: dict[str, str] = {}
    while True:
        line = (await reader.readline()).decode()
        if not line:
            break
        if line.startswith("SET VARIABLE "):
            _, _, name, value = line.rstrip("\n").split(" ", 3)
            variables[name] = value.strip('"')
        elif line.startswith("EXEC MSet "):  # name=value,name=value (no commas in our values)
            for pair in line.rstrip("\n")[len("EXEC MSet "):].strip('"').split(","):
                name, _, value = pair.partition("=")
                if not name.endswith(")"):  # a function write (the timeout cleared), not a variable
                    variables[name] = value
        writer.write(b"200 result=1\n")
        await writer.drain()
    writer.close()
    return variables
