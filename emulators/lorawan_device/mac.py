"""How a class A/C device answers the network's MAC commands (LoRaWAN 1.0.3 §5, RP002 EU868).

Each handler checks a request against the region and the device's settings, applies it only
when every part is acceptable (the spec's all-or-nothing rule), and returns the answer.
Answers the spec wants repeated until a downlink arrives (RXParamSetupAns, RXTimingSetupAns,
DlChannelAns, §5.4/§5.7/§5.6) are marked sticky.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from otaharness.protocols.lorawan import mac_commands as mc
from otaharness.protocols.lorawan.region import Region

from .state import Channel, MacSettings

STICKY_ANSWERS = (mc.RXParamSetupAns, mc.RXTimingSetupAns, mc.DlChannelAns)
# RP002 EU863-870: the three default channels cannot be changed by NewChannelReq.
DEFAULT_CHANNEL_COUNT = 3
MAX_RX1_DR_OFFSET = 5


@dataclass
class MacContext:
    """What answers need beyond the settings: the last downlink's SNR, battery, callbacks."""

    region: Region
    settings: MacSettings
    last_snr_db: float
    battery: int
    on_link_check: Callable[[mc.LinkCheckAns], None]
    on_device_time: Callable[[mc.DeviceTimeAns], None]


def _frequency_ok(region: Region, frequency_hz: int) -> bool:
    low, high = region.frequency_range_hz
    return low <= frequency_hz < high


def _lora_dr_ok(region: Region, data_rate: int) -> bool:
    return 0 <= data_rate < len(region.data_rates) and region.data_rates[data_rate].spreading_factor is not None


def link_adr(ctx: MacContext, req: mc.LinkADRReq) -> mc.LinkADRAns:
    settings = ctx.settings
    channels = settings.channels
    if req.ch_mask_cntl == 0:
        mask = [bool(req.ch_mask >> i & 1) for i in range(len(channels))]
        channel_ok = any(mask) and all(channels[i] is not None for i, on in enumerate(mask) if on)
    elif req.ch_mask_cntl == 6:  # EU868: all defined channels on
        mask = [channel is not None for channel in channels]
        channel_ok = True
    else:
        mask, channel_ok = [], False
    # DataRate 0xF / TXPower 0xF (1.0.4) mean "keep"; 1.0.3 devices reject them as invalid.
    usable = [channel for i, channel in enumerate(channels)
              if channel is not None and (mask[i] if channel_ok else channel.enabled)]
    data_rate_ok = _lora_dr_ok(ctx.region, req.data_rate) and any(
        channel.min_dr <= req.data_rate <= channel.max_dr for channel in usable)
    power_ok = req.tx_power <= ctx.region.max_tx_power_index
    answer = mc.LinkADRAns(channel_mask_ack=channel_ok, data_rate_ack=data_rate_ok, power_ack=power_ok)
    if answer.all_ok:
        for i, channel in enumerate(channels):
            if channel is not None:
                channel.enabled = mask[i]
        settings.data_rate = req.data_rate
        settings.tx_power_index = req.tx_power
        settings.nb_trans = req.nb_trans or 1
    return answer


def rx_param_setup(ctx: MacContext, req: mc.RXParamSetupReq) -> mc.RXParamSetupAns:
    answer = mc.RXParamSetupAns(channel_ack=_frequency_ok(ctx.region, req.frequency_hz),
                                rx2_data_rate_ack=_lora_dr_ok(ctx.region, req.rx2_data_rate),
                                rx1_dr_offset_ack=req.rx1_dr_offset <= MAX_RX1_DR_OFFSET)
    if answer.all_ok:
        ctx.settings.rx1_dr_offset = req.rx1_dr_offset
        ctx.settings.rx2_data_rate = req.rx2_data_rate
        ctx.settings.rx2_frequency_hz = req.frequency_hz
    return answer


def new_channel(ctx: MacContext, req: mc.NewChannelReq) -> mc.NewChannelAns:
    index_ok = DEFAULT_CHANNEL_COUNT <= req.ch_index < len(ctx.settings.channels)
    frequency_ok = index_ok and (req.frequency_hz == 0 or _frequency_ok(ctx.region, req.frequency_hz))
    range_ok = req.min_dr <= req.max_dr and _lora_dr_ok(ctx.region, req.min_dr) and _lora_dr_ok(ctx.region, req.max_dr)
    answer = mc.NewChannelAns(channel_frequency_ok=frequency_ok, data_rate_range_ok=range_ok)
    if answer.all_ok:
        ctx.settings.channels[req.ch_index] = (
            None if req.frequency_hz == 0 else Channel(req.frequency_hz, req.min_dr, req.max_dr))
    return answer


def dl_channel(ctx: MacContext, req: mc.DlChannelReq) -> mc.DlChannelAns:
    channel = ctx.settings.channels[req.ch_index] if req.ch_index < len(ctx.settings.channels) else None
    answer = mc.DlChannelAns(channel_frequency_ok=_frequency_ok(ctx.region, req.frequency_hz),
                             uplink_frequency_exists=channel is not None)
    if answer.all_ok and channel is not None:
        channel.rx1_frequency_hz = req.frequency_hz
    return answer


def rx_timing_setup(ctx: MacContext, req: mc.RXTimingSetupReq) -> mc.RXTimingSetupAns:
    ctx.settings.rx1_delay_s = req.rx1_delay_s
    return mc.RXTimingSetupAns()


def duty_cycle(ctx: MacContext, req: mc.DutyCycleReq) -> mc.DutyCycleAns:
    ctx.settings.max_duty_cycle = req.max_duty_cycle
    return mc.DutyCycleAns()


def dev_status(ctx: MacContext, req: mc.DevStatusReq) -> mc.DevStatusAns:
    margin = max(-32, min(31, round(ctx.last_snr_db)))
    return mc.DevStatusAns(battery=ctx.battery, margin=margin)


def link_check(ctx: MacContext, ans: mc.LinkCheckAns) -> None:
    ctx.on_link_check(ans)


def device_time(ctx: MacContext, ans: mc.DeviceTimeAns) -> None:
    ctx.on_device_time(ans)


_HANDLERS: dict[type[mc.MacCommand], Callable[[MacContext, mc.MacCommand], mc.MacCommand | None]] = {
    mc.LinkADRReq: link_adr,  # type: ignore[dict-item]
    mc.RXParamSetupReq: rx_param_setup,  # type: ignore[dict-item]
    mc.NewChannelReq: new_channel,  # type: ignore[dict-item]
    mc.DlChannelReq: dl_channel,  # type: ignore[dict-item]
    mc.RXTimingSetupReq: rx_timing_setup,  # type: ignore[dict-item]
    mc.DutyCycleReq: duty_cycle,  # type: ignore[dict-item]
    mc.DevStatusReq: dev_status,  # type: ignore[dict-item]
    mc.LinkCheckAns: link_check,  # type: ignore[dict-item]
    mc.DeviceTimeAns: device_time,  # type: ignore[dict-item]
    # TxParamSetupReq is not used in EU868 (RP002): an EU868 device ignores it and answers nothing.
}


def answer_mac_commands(ctx: MacContext, commands: list[mc.MacCommand]) -> list[mc.MacCommand]:
    """Apply ``commands`` in order; return the answers to send on the next uplink."""
    answers = []
    for command in commands:
        handler = _HANDLERS.get(type(command))
        answer = handler(ctx, command) if handler else None
        if answer is not None:
            answers.append(answer)
    return answers
