"""The simulator's Bitget UTA (v3) socket: the sampled `liquidation` topic of §12."""

from __future__ import annotations

from tests.simkit import MINUTE, running

ARG = {"instType": "usdt-futures", "topic": "liquidation"}


async def test_subscribe_ack_errors_pong_and_the_documented_push() -> None:
    async with (
        running(venues=("bitget",)) as (sim, http),
        http.ws_connect(sim.url.replace("http", "ws") + "/v3/ws/public") as ws,
    ):
        await ws.send_json({"op": "subscribe", "args": [ARG, {**ARG, "instType": "spot"}]})
        ack = await ws.receive_json()
        assert ack["event"] == "subscribe" and ack["arg"] == ARG and ack["connId"]
        error = await ws.receive_json()
        assert (error["event"], error["code"]) == ("error", "30001")
        await ws.send_str("ping")
        assert (await ws.receive()).data == "pong"
        t0 = sim.ctx.now_ms()
        sim.ctx.clock.set(t0 + MINUTE)
        push = await ws.receive_json()
        assert (push["arg"], push["action"]) == (ARG, "update") and isinstance(push["ts"], int)
        rows = push["data"]
        assert rows and all(set(r) == {"symbol", "side", "price", "amount", "ts"} for r in rows)
        assert all(push["ts"] - 1000 < int(r["ts"]) <= push["ts"] for r in rows)
        sides = [(r["symbol"], r["side"]) for r in rows]
        assert len(sides) == len(set(sides))  # at most one long and one short per symbol


async def test_ten_messages_a_second_closes_the_connection() -> None:
    async with (
        running(venues=("bitget",)) as (sim, http),
        http.ws_connect(sim.url.replace("http", "ws") + "/v3/ws/public") as ws,
    ):
        for _ in range(11):
            await ws.send_str("ping")
        pongs = [msg.data async for msg in ws]
        assert pongs == ["pong"] * 10 and ws.close_code == 1008
