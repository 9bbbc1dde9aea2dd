"""Severity from colloquial wording, one case per line."""

from __future__ import annotations

import pytest

from services.triage.rules import Rules

from .conftest import triage

CASES = [
    ("critical", "他说今天不把钱给他，他就从这楼上跳下去"),
    ("critical", "那人手里攥着一把刀，在院子里转来转去"),
    ("critical", "两边的人还在打，有人已经躺在地上了"),
    ("critical", "拆迁户把煤气罐搬到了门口，说谁敢动他房子就一起死"),
    ("critical", "家属把老人的遗体抬到了厂门口，要求老板出来给说法"),
    ("critical", "三四十个工人把老板的车围住了，不让走"),
    ("critical", "她丈夫说再闹就拉着全家一起死"),
    ("critical", "讨债的拎着砍刀上门了"),
    ("high", "对方撂下狠话，说这事没完，让我走夜路小心点"),
    ("high", "老太太被推倒后胳膊骨折了"),
    ("high", "这是这个月第三回打电话反映了"),
    ("high", "十二户人家联名反映物业乱收费"),
    ("high", "被狗咬了一口，打了五针狂犬疫苗"),
    ("high", "他被打得满脸是血"),
    ("high", "工人从架子上摔下来，当场就没了"),
    ("medium", "欠了我一万五，一直拖着"),
    ("medium", "老两口七十多了，儿子不给生活费"),
    ("medium", "两人互相推了几下，被旁边的人拉开了"),
    ("medium", "这事上个月已经报过一次了，这是第二次"),
    ("medium", "我怀着孕，楼上还天天装修"),
    ("medium", "他家孩子才十二岁，被人骗着充了游戏币"),
    ("low", "邻居家的空调外机滴水，说了几次不改"),
    ("low", "超市卖的牛奶过期了，要求退款"),
    ("low", "两口子为了谁做饭吵了几句"),
    ("low", "对方说要告他，他说随便告"),
    ("low", "打电话给物业三次都没人接"),
    ("low", "两人吵得很凶，但谁也没碰谁"),
    ("low", "刚才打电话问了一下，对方说明天来处理"),
    ("low", "他说要去上级部门反映"),
    ("low", "车被刮了一道印子，对方愿意赔两百"),
    ("critical", "男的喝了酒，拿着菜刀站在丈母娘家门口骂"),
    ("critical", "工人们说明天再不发工资就集体去跳河"),
    ("critical", "现场两家人扭打在一起，拉都拉不开"),
    ("critical", "有个老汉喝了半瓶农药，正在送医院"),
    ("critical", "五六十个村民在乡政府门口坐着不走"),
    ("critical", "他把汽油洒在了老板的车上，手里拿着打火机"),
    ("critical", "两个村的人抄家伙对峙，随时可能打起来"),
    ("high", "她被老公打得眼睛都肿了"),
    ("high", "对方扬言要找社会上的人来收拾他"),
    ("high", "病人做完手术后瘫了"),
    ("high", "十几个工人找老板要工钱"),
    ("high", "这家人本月已经是第四次找到社区了"),
    ("medium", "他家欠了信用社三万多"),
    ("medium", "她是个聋哑人，被邻居欺负"),
    ("medium", "两口子打架，男的推了女的一把，没受伤"),
    ("medium", "八十岁的老头跟邻居为一堵墙吵起来了"),
    ("low", "老板说下个月一起发工资"),
    ("low", "楼上漏水把我家天花板泡坏了"),
    ("low", "吵架时对方说要去法院告他"),
    ("low", "网购的衣服不合身，商家不退"),
    # revenge threats in dialect and with other pronouns
    ("high", "那个混子临走时说改天再来收拾咱们"),
    ("high", "他指着我的鼻子说：你给俺等着"),
    ("high", "包工头说谁再闹就没他好果子吃"),
    # severed or crushed fingers and toes
    ("high", "装卸货物时被叉车压断了脚趾"),
    ("high", "木工在加工厂被电锯锯掉半截指头"),
    ("high", "冲床操作时断指，厂里只给两千块"),
    # minors by school grade
    ("medium", "读高一的侄子在网吧被人骗走了手机"),
    ("medium", "六年级的学生在文具店买到了过期的零食"),
    ("medium", "他家孩子上初二，被同学拉进群里天天骂"),
    # lunar dates, cut cables and packing up are not minors, injuries or threats
    ("low", "正月初三走亲戚时两家为座位吵了几句"),
    ("low", "施工队挖断了光缆，整条街没网，找物业不管"),
    ("low", "租客把行李收拾好就搬走了，押金还没退"),
    ("low", "修路时把自来水管切断了，村民要求赔偿"),
]


@pytest.mark.parametrize(("expected", "text"), CASES)
def test_colloquial_severity(rules: Rules, expected: str, text: str) -> None:
    assert triage(rules, text).severity == expected


def test_farm_tools_at_work_are_not_weapons(rules: Rules) -> None:
    assert triage(rules, "他扛着锄头去地里干活，两家为地界吵了几句").severity == "low"
